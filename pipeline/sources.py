"""Video sources: URIs parsed into typed specs, and their GStreamer decode-and-normalise chains.

Accepted URIs::

    /abs/or/relative/clip.mp4               any container/codec GStreamer decodes
    file:///abs/path/clip.mp4
    photo.jpg, file:///abs/photo.png        a still image (.jpg, .jpeg, .png): a one-frame stream
    rtsp://host:port/path?transport=tcp&latency=200   (transport tcp|udp, latency in ms)
    v4l2:///dev/video0
    synth://?seed=1&people=2&frames=300&action=lunge  the synthetic world, rendered live
                                            (people and action drawn from the seed when
                                            absent; endless without frames)

Every source ends in the same normalisation, so the elements after it see one format::

    <decode> ! videoconvert ! videoscale [! videorate]
        ! capsfilter caps="video/x-raw,format=RGB[,width=W,height=H][,framerate=F]"

A None size or rate keeps the source's own. `describe_source` gives that chain as a gst-launch
fragment, `build_source` as a `Gst.Bin` with a ``src`` ghost pad, and `iterate_frames` pulls the
frames into Python for offline tools and tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402

from media.decode import DecodeError, pull_frames  # noqa: E402
from media.frames import RGB_CHANNELS, pack_rgb  # noqa: E402
from media.gst import (  # noqa: E402
    NS_PER_S,
    GstError,
    parse_bin,
    parse_launch,
    post_error,
    quote,
    rgb_caps,
)
from tps.vocabulary import ACTIONS  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_RTSP_LATENCY_MS = 200
DEFAULT_SYNTH_SIZE = (320, 240)
"""(width, height) of synthetic frames when the source is not given a size."""
DEFAULT_SYNTH_FPS = 25
DEFAULT_FRAME_TIMEOUT_S = 10.0
"""`iterate_frames`: longest wait for the next frame (or for the first one, including preroll)."""
POLL_INTERVAL_S = 0.1
"""`iterate_frames`: appsink pull slice between bus checks."""
APPSINK_MAX_BUFFERS = 4
"""`iterate_frames`: frames queued at the appsink before decoding blocks (lossless)."""


class SourceError(Exception):
    """A source URI is malformed, names a missing file, or the source fails while streaming."""


@dataclass(frozen=True, slots=True)
class FileSource:
    """A video file decoded by ``decodebin``; `path` is absolute."""

    kind: ClassVar[str] = "file"
    uri: str
    path: Path


@dataclass(frozen=True, slots=True)
class RtspSource:
    """An RTSP stream; `location` is the URI handed to ``rtspsrc`` (our query keys removed)."""

    kind: ClassVar[str] = "rtsp"
    uri: str
    location: str
    transport: Literal["tcp", "udp"] = "tcp"
    latency_ms: int = DEFAULT_RTSP_LATENCY_MS


@dataclass(frozen=True, slots=True)
class V4l2Source:
    """A Video4Linux2 camera device (raw or MJPEG)."""

    kind: ClassVar[str] = "v4l2"
    uri: str
    device: str


@dataclass(frozen=True, slots=True)
class SynthSource:
    """The synthetic world (`tps.synth.SynthVideo`) pushed through an ``appsrc``."""

    kind: ClassVar[str] = "synth"
    uri: str
    seed: int = 0
    people: int | None = None
    frames: int | None = None
    action: str | None = None


@dataclass(frozen=True, slots=True)
class ImageSource:
    """A still image (`IMAGE_SUFFIXES`) decoded once: a stream of one frame, then end of stream."""

    kind: ClassVar[str] = "image"
    uri: str
    path: Path


SourceSpec = FileSource | ImageSource | RtspSource | V4l2Source | SynthSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
"""File name endings (any case) read as still images rather than videos."""
_RTSP_SCHEMES = ("rtsp", "rtsps", "rtspt", "rtspu")
_SCHEMES = ("file", *_RTSP_SCHEMES, "v4l2", "synth")


def _options(uri: str, query: str) -> dict[str, str]:
    """Query options of `uri`; a repeated key is an error."""
    pairs = parse_qsl(query, keep_blank_values=True)
    options = dict(pairs)
    if len(options) != len(pairs):
        raise SourceError(f"source {uri!r}: repeated query option")
    return options


def _int_option(
    uri: str, options: dict[str, str], key: str, default: int | None, minimum: int
) -> int | None:
    """Pop `key` from `options` as an int >= `minimum`."""
    text = options.pop(key, None)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SourceError(f"source {uri!r}: {key} must be an integer, got {text!r}") from None
    if value < minimum:
        raise SourceError(f"source {uri!r}: {key} must be >= {minimum}, got {value}")
    return value


def _reject_unknown(uri: str, options: dict[str, str], known: tuple[str, ...]) -> None:
    if options:
        raise SourceError(
            f"source {uri!r}: unknown option {', '.join(sorted(options))};"
            f" expected {', '.join(known)}"
        )


def _file_source(uri: str, path_text: str) -> FileSource | ImageSource:
    if not path_text:
        raise SourceError(f"source {uri!r}: missing file path")
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        where = "" if str(path) == uri else f" ({path})"  # a relative path, as resolved
        raise SourceError(f"{uri}: no such file{where}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(uri, path)
    return FileSource(uri, path)


def _rtsp_source(uri: str, parts: tuple[str, str, str, str, str]) -> RtspSource:
    scheme, netloc, path, query, _fragment = parts
    if not netloc:
        raise SourceError(f"source {uri!r}: missing host")
    options = _options(uri, query)
    transport = options.pop("transport", "tcp")
    if transport not in ("tcp", "udp"):
        raise SourceError(f"source {uri!r}: transport must be tcp or udp, got {transport!r}")
    latency_ms = _int_option(uri, options, "latency", DEFAULT_RTSP_LATENCY_MS, 0)
    # options left over belong to the camera (e.g. ?channel=1) and stay in its URI
    location = urlunsplit((scheme, netloc, path, urlencode(options), ""))
    return RtspSource(uri, location, transport, latency_ms)  # type: ignore[arg-type]  # checked


def _synth_source(uri: str, query: str) -> SynthSource:
    options = _options(uri, query)
    seed = _int_option(uri, options, "seed", 0, 0)
    people = _int_option(uri, options, "people", None, 1)
    frames = _int_option(uri, options, "frames", None, 1)
    action = options.pop("action", None)
    if action is not None and action not in ACTIONS:
        raise SourceError(f"source {uri!r}: unknown action {action!r}; expected a TPS action")
    _reject_unknown(uri, options, ("seed", "people", "frames", "action"))
    return SynthSource(uri, seed, people, frames, action)


def parse_source(uri: str) -> SourceSpec:
    """Parse a source URI (or a plain file path) into its spec.

    Raises:
        SourceError: unknown scheme, missing path or host, bad or unknown option, missing file.
    """
    if "://" not in uri:
        return _file_source(uri, uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError(f"source {uri!r}: file URIs must be local, got host {parts.netloc!r}")
        return _file_source(uri, unquote(parts.path))
    if scheme in _RTSP_SCHEMES:
        return _rtsp_source(uri, parts)
    if scheme == "v4l2":
        if not parts.path:
            raise SourceError(f"source {uri!r}: missing device path (v4l2:///dev/video0)")
        return V4l2Source(uri, unquote(parts.path))
    if scheme == "synth":
        return _synth_source(uri, parts.query)
    raise SourceError(f"source {uri!r}: unknown scheme {scheme!r}; expected {', '.join(_SCHEMES)}")


def _decode(spec: SourceSpec, name: str) -> str:
    """The gst-launch fragment producing decoded video for `spec`."""
    if isinstance(spec, FileSource):
        return f"filesrc location={quote(str(spec.path))} ! decodebin"
    if isinstance(spec, ImageSource):
        # imagefreeze gives the one decoded picture a timestamp (0) and a frame rate (the caps
        # ask for one, else 25/1) in place of the decoder's 0/1, then ends the stream
        return f"filesrc location={quote(str(spec.path))} ! decodebin ! imagefreeze num-buffers=1"
    if isinstance(spec, RtspSource):
        return (
            f"rtspsrc location={quote(spec.location)} protocols={spec.transport}"
            f" latency={spec.latency_ms} ! decodebin"
        )
    if isinstance(spec, V4l2Source):
        return f"v4l2src device={quote(spec.device)} ! decodebin"
    return f"appsrc name={_appsrc_name(name)} format=time"


def _appsrc_name(name: str) -> str:
    return f"{name}_synth"


def _caps_name(name: str) -> str:
    return f"{name}_rgb"


def describe_source(
    spec: SourceSpec,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    name: str = "s0",
) -> str:
    """The gst-launch fragment of a source, ending in a capsfilter of packed RGB caps.

    Args:
        spec: the parsed source.
        width: output width in pixels, or None to keep the source's.
        height: output height in pixels, or None to keep the source's.
        fps: output frame rate, or None to keep the source's.
        name: stream name; prefixes element names so that several sources share a pipeline.

    A synthetic source's ``appsrc`` needs its feeder: use `build_source` or `iterate_frames`.
    """
    chain = [_decode(spec, name), "videoconvert", "videoscale"]
    if fps is not None:
        chain.append("videorate")
    chain.append(f"capsfilter name={_caps_name(name)} caps={quote(rgb_caps(width, height, fps))}")
    return " ! ".join(chain)


class _SynthFeeder:
    """Pushes `SynthVideo` frames into an ``appsrc`` on demand, timestamped at the frame rate."""

    def __init__(self, spec: SynthSource, width: int, height: int, fps: int) -> None:
        from tps.synth import SynthVideo  # the renderer is only needed by synthetic sources

        self.video = SynthVideo(
            seed=spec.seed,
            size=(width, height),
            fps=fps,
            people=spec.people,
            frames=spec.frames,
            action=spec.action,
        )
        self.width = width
        self.height = height
        self.frames = spec.frames
        self.fps = fps
        self.next_index = 0

    def on_need_data(self, appsrc: GstApp.AppSrc, _length: int) -> None:
        if self.frames is not None and self.next_index >= self.frames:
            appsrc.end_of_stream()
            return
        try:
            rgb = self.video.frame(self.next_index)
            if rgb.shape != (self.height, self.width, RGB_CHANNELS) or rgb.dtype != np.uint8:
                raise ValueError(
                    f"expected ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}"
                )
        except Exception as error:  # a failing renderer ends the stream with a bus error
            post_error(appsrc, f"synthetic frame {self.next_index}: {error}")
            return
        buffer = Gst.Buffer.new_wrapped(pack_rgb(rgb))
        buffer.pts = round(self.next_index * NS_PER_S / self.fps)
        buffer.duration = round(NS_PER_S / self.fps)
        buffer.offset = self.next_index
        self.next_index += 1
        appsrc.push_buffer(buffer)


def _attach_synth(
    container: Gst.Bin,
    spec: SourceSpec,
    name: str,
    width: int | None,
    height: int | None,
    fps: float | None,
) -> None:
    """Give a synthetic source's ``appsrc`` in `container` its caps and feeder.

    Raises:
        SourceError: the renderer is missing or rejects the parameters (e.g. too many people).
    """
    if not isinstance(spec, SynthSource):
        return
    appsrc = container.get_by_name(_appsrc_name(name))
    # the renderer draws even sizes at whole rates; the normalisation scales to the exact ones
    size = (width or DEFAULT_SYNTH_SIZE[0], height or DEFAULT_SYNTH_SIZE[1])
    size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
    rate = round(fps) if fps else DEFAULT_SYNTH_FPS
    try:
        feeder = _SynthFeeder(spec, size[0], size[1], rate)
    except Exception as error:  # the renderer's own errors: missing module, bad parameters
        raise SourceError(f"stream {name!r}: source {spec.uri!r}: {error}") from error
    appsrc.set_property("caps", Gst.Caps.from_string(rgb_caps(size[0], size[1], rate)))
    appsrc.connect("need-data", feeder.on_need_data)


def build_source(
    spec: SourceSpec,
    name: str = "s0",
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
) -> Gst.Bin:
    """The source as a bin named `name` with a ``src`` ghost pad producing normalised RGB.

    Raises:
        SourceError: the chain cannot be built (e.g. a GStreamer plugin is missing).
    """
    try:
        bin_ = parse_bin(describe_source(spec, width, height, fps, name), name, _caps_name(name))
    except GstError as error:
        raise SourceError(f"stream {name!r}: source {spec.uri!r}: {error}") from error
    _attach_synth(bin_, spec, name, width, height, fps)
    return bin_


def iterate_frames(
    source: str | SourceSpec,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    timeout_s: float = DEFAULT_FRAME_TIMEOUT_S,
    stream: str = "s0",
) -> Iterator[tuple[int, int | None, np.ndarray]]:
    """Decode a source and yield its frames, losslessly, until end of stream.

    Args:
        source: a URI (see module doc) or a parsed spec.
        width: output width, or None for the source's own.
        height: output height, or None for the source's own.
        fps: output frame rate, or None for the source's own.
        timeout_s: longest wait for any one frame.
        stream: name used in element names and error messages.

    Yields:
        (frame_index, pts_ns, rgb): 0-based index, presentation time in ns (None if the buffer
        has none) and a (H, W, 3) uint8 RGB copy of the frame.

    Raises:
        SourceError: bad URI, missing file, a GStreamer error while streaming (its message, the
            stream and the URI), or no frame within `timeout_s`.
    """
    spec = parse_source(source) if isinstance(source, str) else source
    where = f"stream {stream!r}: source {spec.uri!r}"
    sink_name = f"{stream}_appsink"
    description = (
        f"{describe_source(spec, width, height, fps, stream)} ! appsink name={sink_name}"
        f" sync=false max-buffers={APPSINK_MAX_BUFFERS} drop=false emit-signals=false"
    )
    try:
        pipeline = parse_launch(description)
    except GstError as error:
        raise SourceError(f"{where}: {error}") from error
    _attach_synth(pipeline, spec, stream, width, height, fps)
    try:
        count = yield from pull_frames(pipeline, sink_name, timeout_s, POLL_INTERVAL_S)
    except DecodeError as error:
        raise SourceError(f"{where}: {error}") from error
    log.debug("%s: end of stream after %d frames", where, count)
