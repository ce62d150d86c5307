"""Graph building: one GStreamer pipeline per stream, from the pipeline config.

    s0: rtsp -> decode -> stamp -> [leaky queue] -> person -> pose -> parts -> clip -> overlay
        -> publish -> mp4 (png for a still image)

Each stream gets its own `Gst.Pipeline` (its own bus and streaming threads), so a failing stream
stops alone while the others go on; the networks are shared through the process-wide pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

from media.gst import GstError, init, quote  # noqa: E402
from parsing.settings import ParserSettings  # noqa: E402
from pipeline.annotated import IMAGE_SUFFIX, VIDEO_SUFFIX, annotated_chain  # noqa: E402
from pipeline.settings import PipelineConfig  # noqa: E402
from pipeline.sources import FileSource, ImageSource, build_source, parse_source  # noqa: E402
from plugins.settings_props import launch_properties  # noqa: E402

OFFLINE_QUEUE_FRAMES = 4
"""Offline mode decouples decoding from parsing with this many frames (lossless: it blocks)."""
STAGE_QUEUE_FRAMES = {"offline": 2, "live": 1}
"""A small queue between stages gives each its own thread, so stages of one stream overlap; live
mode keeps it to one frame, since every frame waiting there adds to the latency."""
PARSER_QUEUE = "parser_queue"


@dataclass(frozen=True)
class StreamGraph:
    """A built stream: its pipeline, a one-line description and where its video goes."""

    stream: str
    uri: str
    pipeline: Gst.Pipeline
    description: str
    video_path: Path | None

    @property
    def queue(self) -> Gst.Element | None:
        """The queue in front of the parser (leaky in live mode)."""
        return self.pipeline.get_by_name(f"{self.stream}_{PARSER_QUEUE}")


def parser_chain(parser: ParserSettings, final_clips: int) -> list[str]:
    """The parser's elements as gst-launch fragments, in order (no clip element without clip);
    each element's properties are its settings, rendered by the helper it derives them with."""
    stages = [("tpsperson", parser.person), ("tpspose", parser.pose), ("tpsparts", parser.parts)]
    chain = [f"{element} {launch_properties(settings)}" for element, settings in stages]
    if parser.clip is None:
        return chain
    return [*chain, f"tpsclip {launch_properties(parser.clip)} final-clips={final_clips}"]


def build_stream(
    config: PipelineConfig, index: int, endpoint: str, first_index: int = 0, restart: int = 0
) -> StreamGraph:
    """Build the pipeline of source `index` of `config`, publishing to `endpoint`.

    A restarted stream (after a reconnect or a loop) numbers its frames on from `first_index`
    and writes its annotated video to a new file (``<stream>-<restart>.mp4``). A still image's
    annotated frame goes to a PNG (``<stream>.png``).

    Raises:
        SourceError: the source cannot be built.
        GstError: the chain does not parse (e.g. our elements are not registered).
    """
    init()
    stream = config.stream_ids()[index]
    source = config.sources[index]
    spec = parse_source(source.uri)
    live = config.mode == "live"
    video = config.video
    source_bin = build_source(spec, stream, video.width, video.height, video.fps)
    # a still image's one frame always goes in: the gate dropping it would leave nothing parsed
    gate = config.live.max_in_flight if live and spec.kind != "image" else 0
    queue = (
        f"queue name={stream}_{PARSER_QUEUE} leaky=downstream"
        f" max-size-buffers={max(config.live.queue_frames, gate)} max-size-bytes=0 max-size-time=0"
        if live
        else f"queue name={stream}_{PARSER_QUEUE} max-size-buffers={OFFLINE_QUEUE_FRAMES}"
        " max-size-bytes=0 max-size-time=0"
    )
    pacing = ["identity sync=true"] if live and spec.kind in ("file", "synth") else []
    clip = config.parser.clip
    final_clips = 0 if live or clip is None else clip.average_clips
    between = (
        f"queue max-size-buffers={STAGE_QUEUE_FRAMES[config.mode]} max-size-bytes=0 max-size-time=0"
    )
    stages = f" ! {between} ! ".join(parser_chain(config.parser, final_clips))
    stamp = f"tpsstamp stream={stream} first-index={first_index} max-in-flight={gate}"
    chain = [*pacing, stamp, queue, stages]
    video_path = None
    output = config.output
    if output.dir is not None and output.annotated_video:
        suffix = IMAGE_SUFFIX if spec.kind == "image" else VIDEO_SUFFIX
        video_path = output.dir / (f"{stream}-{restart}{suffix}" if restart else stream + suffix)
        if isinstance(spec, FileSource | ImageSource) and video_path.resolve() == spec.path:
            raise GstError(
                f"stream {stream!r}: its annotated output {str(video_path)!r} would overwrite its"
                " own source; write to another output folder"
            )
        chain.append("tpsoverlay")
    chain.append(f"tpspublish endpoint={quote(endpoint)} hwm={config.publish.hwm}")
    if video_path is not None:
        chain += annotated_chain(video_path)
    else:
        chain.append("fakesink sync=false")
    description = " ! ".join(chain)
    try:
        body = Gst.parse_bin_from_description(description, True)
    except GLib.Error as error:
        raise GstError(f"stream {stream!r}: cannot build its chain: {error.message}") from error
    pipeline = Gst.Pipeline.new(stream)
    pipeline.add(source_bin)
    pipeline.add(body)
    if not source_bin.link(body):
        raise GstError(f"stream {stream!r}: cannot link its source to the parser")
    names = [spec.kind, "decode", "stamp"]
    names += ["person", "pose", "parts"] + (["clip"] if clip is not None else [])
    names += (["overlay"] if video_path else []) + ["publish"]
    names += [video_path.suffix[1:]] if video_path else []
    return StreamGraph(stream, source.uri, pipeline, f"{stream}: {' -> '.join(names)}", video_path)
