"""Decode a video file into RGB frames through GStreamer, for training and evaluation.

``filesrc ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink``, pulled synchronously
with a bounded wait per frame. GStreamer is initialised on the first call, never at import.
Rows of an RGB frame are padded to a multiple of 4 bytes by GStreamer when ``width * 3`` is not
one; the padding is cut off here, so callers always get dense (H, W, 3) arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gi
import numpy as np

log = logging.getLogger(__name__)

FRAME_TIMEOUT_S = 10.0
"""Longest wait for one decoded frame (or the end of the stream) before giving up."""
POLL_S = 0.05
"""Slice of that wait after which the bus is checked for a decoding error."""
NS_PER_S = 1_000_000_000
RGB_CHANNELS = 3
_PIPELINE = (
    "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
    "appsink name=sink sync=false"
)


class VideoError(Exception):
    """A video file is missing, cannot be decoded, or lacks the frames asked for."""


def _gst() -> tuple[Any, Any, Any]:
    """Gst, GstVideo and GLib, with GStreamer initialised (once)."""
    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import GLib, Gst, GstApp, GstVideo

    del GstApp  # imported for its side effect: appsink gains try_pull_sample / is_eos

    if not Gst.is_initialized():
        Gst.init(None)
    return Gst, GstVideo, GLib


def _frame_from_sample(sample: Any, gst_video: Any, path: Path) -> np.ndarray:
    """Copy one RGB appsink sample into a dense (H, W, 3) uint8 array."""
    info = gst_video.VideoInfo.new_from_caps(sample.get_caps())
    if info is None:
        raise VideoError(f"{path}: decoder produced caps without video info")
    width, height, stride = info.width, info.height, info.stride[0]
    buffer = sample.get_buffer()
    ok, mapped = buffer.map(_gst()[0].MapFlags.READ)
    if not ok:
        raise VideoError(f"{path}: cannot map a decoded buffer")
    try:
        rows = np.frombuffer(mapped.data, dtype=np.uint8, count=stride * height)
        frame = rows.reshape(height, stride)[:, : width * RGB_CHANNELS]  # H,W*3 (padding cut)
        return frame.reshape(height, width, RGB_CHANNELS).copy()
    finally:
        buffer.unmap(mapped)


def _bus_error(pipeline: Any, gst: Any) -> str | None:
    """The first error message waiting on the bus, as one line, or None."""
    message = pipeline.get_bus().pop_filtered(gst.MessageType.ERROR)
    if message is None:
        return None
    error, _debug = message.parse_error()
    return f"{message.src.get_name() if message.src else 'pipeline'}: {error.message}"


def read_frames(path: str | Path, indices: Iterable[int] | None = None) -> np.ndarray:
    """Decode a video file into RGB frames.

    Args:
        path: the video file (any container and codec GStreamer decodes, e.g. H.264 MP4).
        indices: 0-based frame indices to keep, in the order wanted (repeats allowed); None keeps
            every frame. Decoding stops after the highest index asked for.

    Returns:
        (T, H, W, 3) uint8 RGB frames; T = len(indices), or the frame count when indices is None.

    Raises:
        VideoError: the file is missing, decoding fails or stalls, or an index is past the end.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file {path} does not exist")
    wanted = None if indices is None else [int(index) for index in indices]
    if wanted is not None and any(index < 0 for index in wanted):
        raise VideoError(f"{path}: frame indices must be >= 0; got {min(wanted)}")
    last = None if wanted is None else max(wanted, default=0)
    gst, gst_video, glib = _gst()
    try:
        pipeline = gst.parse_launch(_PIPELINE)
    except glib.Error as error:
        raise VideoError(f"{path}: cannot build the decoder ({error.message})") from error
    pipeline.get_by_name("src").set_property("location", str(path))
    sink = pipeline.get_by_name("sink")
    decoded: list[np.ndarray] = []
    try:
        if pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            raise VideoError(f"{path}: the decoder cannot start ({_bus_error(pipeline, gst)})")
        waited = 0
        while last is None or len(decoded) <= last:
            sample = sink.try_pull_sample(int(POLL_S * NS_PER_S))
            if sample is not None:
                decoded.append(_frame_from_sample(sample, gst_video, path))
                waited = 0
                continue
            problem = _bus_error(pipeline, gst)
            if problem is not None:
                raise VideoError(f"cannot decode {path}: {problem}")
            if sink.is_eos():
                break
            waited += 1
            if waited * POLL_S >= FRAME_TIMEOUT_S:
                raise VideoError(
                    f"{path}: no frame within {FRAME_TIMEOUT_S:.0f} s after frame {len(decoded)}"
                )
    finally:
        pipeline.set_state(gst.State.NULL)
    if not decoded:
        raise VideoError(f"{path}: the video has no frames")
    if wanted is None:
        return np.stack(decoded)
    if wanted and last >= len(decoded):
        raise VideoError(
            f"{path}: frame index {last} asked for, but the video has {len(decoded)} frames"
        )
    if not wanted:
        return np.zeros((0, *decoded[0].shape), dtype=np.uint8)
    return np.stack([decoded[index] for index in wanted])
