"""The annotated MP4: the pipeline writes it, GStreamer's discoverer reads it back.

Browsers (and many players) decode only 8-bit 4:2:0 H.264 in the Constrained Baseline, Baseline,
Main or High profiles; RGB fed straight into x264 gives High 4:4:4 Predictive, which they refuse.
"""

from __future__ import annotations

from pathlib import Path

import gi
import pytest

gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
from gi.repository import Gst, GstPbutils  # noqa: E402

from media.gst import init  # noqa: E402
from pipeline.annotated import annotated_chain  # noqa: E402
from tests.pipeline.test_runner import make_config, run_with_subscriber  # noqa: E402

PLAYABLE_PROFILES = {"constrained-baseline", "baseline", "main", "high"}
DISCOVER_TIMEOUT_S = 10
RUN_TIMEOUT_S = 60
X264_DEFAULT_BITRATE_KBPS = 2048
"""x264enc's own constant bitrate, which gave real 1080p footage 1.8 Mbit/s."""


def discover(path: Path) -> tuple[Gst.Structure, int]:
    """The caps of the file's one video stream and the file's bit rate (bits per second)."""
    init()
    info = GstPbutils.Discoverer.new(DISCOVER_TIMEOUT_S * Gst.SECOND).discover_uri(
        Gst.filename_to_uri(str(path))
    )
    streams = info.get_video_streams()
    assert len(streams) == 1, f"{path}: {len(streams)} video streams"
    seconds = info.get_duration() / Gst.SECOND
    return streams[0].get_caps().get_structure(0), round(path.stat().st_size * 8 / seconds)


def assert_playable(caps: Gst.Structure) -> None:
    assert caps.get_name() == "video/x-h264"
    assert caps.get_string("profile") in PLAYABLE_PROFILES, caps.to_string()
    assert caps.get_string("chroma-format") == "4:2:0", caps.to_string()
    assert caps.get_value("bit-depth-luma") == 8


def size(caps: Gst.Structure) -> tuple[int, int]:
    return caps.get_value("width"), caps.get_value("height")


def test_the_pipelines_annotated_mp4_is_browser_playable_h264(random_weights, tmp_path):
    """An odd-sized stream through the whole pipeline: 4:2:0 High-or-lower H.264, even size."""
    sources = [{"id": "odd", "uri": "synth://?seed=5&people=1&frames=8"}]
    config = make_config(
        random_weights, sources, tmp_path / "out", video={"width": 321, "height": 241}
    )
    runner, _ = run_with_subscriber(config)
    assert runner.report.states == {"odd": "eos"}
    caps, _ = discover(tmp_path / "out" / "odd.mp4")
    assert_playable(caps)
    assert size(caps) == (320, 240)


def encode(path: Path, source: str, width: int, height: int, fps: int) -> Path:
    """RGB frames of `source` (a gst-launch fragment) through the annotated chain to `path`."""
    init()
    chain = " ! ".join(annotated_chain(path))
    pipeline = Gst.parse_launch(
        f"{source} ! videoconvert ! videoscale ! videorate"
        f" ! video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1 ! {chain}"
    )
    pipeline.set_state(Gst.State.PLAYING)
    message = pipeline.get_bus().timed_pop_filtered(
        RUN_TIMEOUT_S * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    assert message is not None and message.type == Gst.MessageType.EOS, (
        message and message.parse_error()
    )
    return path


@pytest.mark.parametrize(
    ("frame", "even"),
    [
        pytest.param((1920, 1080), (1920, 1080), id="1080p"),
        pytest.param((1921, 1081), (1920, 1080), id="1080p-odd"),
        pytest.param((321, 241), (320, 240), id="240p-odd"),
        pytest.param((15, 9), (16, 16), id="tiny-grows-to-x264s-least"),
    ],
)
def test_the_mp4_chain_writes_playable_h264_at_any_size(tmp_path, frame, even):
    ball = "videotestsrc num-buffers=5 pattern=ball"
    caps, _ = discover(encode(tmp_path / "ball.mp4", ball, *frame, fps=25))
    assert_playable(caps)
    assert size(caps) == even


def test_real_1080p_footage_gets_the_bits_its_detail_needs(shared_media, tmp_path):
    """skeleton_demo.mp4 (1080p, 28 fps), its first second: level 4 that every device decodes."""
    clip = shared_media / "skeleton_demo.mp4"
    source = f"filesrc location={clip} ! decodebin ! identity eos-after=28"
    caps, bits_per_second = discover(encode(tmp_path / "skeleton.mp4", source, 1920, 1080, 28))
    assert_playable(caps)
    assert caps.get_string("level") == "4"
    assert bits_per_second > 1.5 * X264_DEFAULT_BITRATE_KBPS * 1000
