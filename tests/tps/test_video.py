"""tps.video.read_frames on H.264 files encoded here from known frames."""

from __future__ import annotations

from pathlib import Path

import gi
import numpy as np
import pytest

from tps.video import VideoError, read_frames

FRAMES = 6
FPS = 25
NS_PER_S = 1_000_000_000
EOS_TIMEOUT_S = 20
MAX_MEAN_ERROR = 4.0
"""Grey levels: H.264 at a low quantiser plus RGB -> I420 -> RGB keeps grey frames this close."""


def _grey_frames(height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) grey frames: a horizontal ramp whose brightness grows with the frame index."""
    ramp = np.linspace(0, 60, width, dtype=np.float32)[None, :]  # 1,W
    frames = [np.broadcast_to(40 + 25 * index + ramp, (height, width)) for index in range(FRAMES)]
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1).round().astype(np.uint8)


def _encode(frames: np.ndarray, path: Path) -> None:
    """Write (T, H, W, 3) RGB frames as an H.264 MP4 through appsrc (rows padded as GStreamer's)."""
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    _, height, width, _ = frames.shape
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={width},height={height},"
        f"framerate={FPS}/1 ! videoconvert ! x264enc quantizer=5 pass=quant ! mp4mux ! "
        "filesink name=out"
    )
    pipeline.get_by_name("out").set_property("location", str(path))
    source = pipeline.get_by_name("src")
    pipeline.set_state(Gst.State.PLAYING)
    stride = -(-width * 3 // 4) * 4  # GStreamer's RGB rows start on 4-byte boundaries
    for index, frame in enumerate(frames):
        rows = np.zeros((height, stride), dtype=np.uint8)
        rows[:, : width * 3] = frame.reshape(height, width * 3)
        buffer = Gst.Buffer.new_wrapped(rows.tobytes())
        buffer.pts = index * NS_PER_S // FPS
        buffer.duration = NS_PER_S // FPS
        source.emit("push-buffer", buffer)
    source.emit("end-of-stream")
    message = pipeline.get_bus().timed_pop_filtered(
        EOS_TIMEOUT_S * NS_PER_S, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    assert message is not None and message.type == Gst.MessageType.EOS


@pytest.mark.parametrize(
    "height, width",
    [
        pytest.param(48, 64, id="row-aligned"),
        pytest.param(50, 66, id="padded-rows"),  # 66 * 3 = 198 bytes, GStreamer pads to 200
    ],
)
def test_read_frames_matches_encoded_frames(tmp_path: Path, height: int, width: int) -> None:
    frames = _grey_frames(height, width)
    video = tmp_path / "clip.mp4"
    _encode(frames, video)

    decoded = read_frames(video)

    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    errors = np.abs(decoded.astype(np.float32) - frames).mean(axis=(1, 2, 3))
    assert errors.max() < MAX_MEAN_ERROR, errors


def test_read_frames_selects_indices_in_order(tmp_path: Path) -> None:
    frames = _grey_frames(32, 48)
    video = tmp_path / "clip.mp4"
    _encode(frames, video)

    picked = read_frames(video, [4, 1, 1])

    brightness = picked.reshape(3, -1).mean(axis=1)
    expected = frames[[4, 1, 1]].reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(brightness, expected, atol=MAX_MEAN_ERROR)
    assert read_frames(video, []).shape == (0, 32, 48, 3)


def test_read_frames_errors_name_the_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    _encode(_grey_frames(32, 48), video)
    with pytest.raises(VideoError, match=r"frame index 9 .* has 6 frames"):
        read_frames(video, [9])
    with pytest.raises(VideoError, match="missing.mp4 does not exist"):
        read_frames(tmp_path / "missing.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoError, match="garbage.mp4"):
        read_frames(garbage)
