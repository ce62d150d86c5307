"""H.264 MP4 writing and frame counting through GStreamer.

GStreamer is imported and initialised on first use, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tps.synth.errors import EncodeError

log = logging.getLogger(__name__)

EOS_TIMEOUT_S = 60.0
"""How long to wait for the muxer to finish after the last frame."""
QUEUED_FRAMES = 4
"""Frames appsrc may hold before `encode_h264` blocks, bounding memory."""
_ROW_ALIGN = 4
"""GStreamer's default row stride alignment for packed RGB."""


def _gst() -> Any:
    """The initialised `Gst` module."""
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    if not Gst.is_initialized():
        Gst.init(None)
    return Gst


def _bus_error(gst: Any, pipeline: Any, timeout_s: float) -> str | None:
    """Wait up to `timeout_s` for EOS or an error; None on EOS, else what went wrong."""
    bus = pipeline.get_bus()
    message = bus.timed_pop_filtered(
        int(timeout_s * gst.SECOND), gst.MessageType.EOS | gst.MessageType.ERROR
    )
    if message is None:
        return f"no end of stream within {timeout_s:.0f} s"
    if message.type == gst.MessageType.ERROR:
        error, debug = message.parse_error()
        return f"{error.message} ({debug})" if debug else error.message
    return None


def encode_h264(
    frames: Iterable[np.ndarray], path: str | Path, fps: int, timeout_s: float = EOS_TIMEOUT_S
) -> int:
    """Encode RGB frames into an H.264 MP4 file at `path`.

    Runs ``appsrc ! videoconvert ! x264enc ! mp4mux ! filesink`` with buffer timestamps
    ``i / fps`` seconds, sends EOS after the last frame and waits for it.

    Args:
        frames: uint8 (H, W, 3) RGB arrays of one size; H and W even.
        path: output file (its directory must exist).
        fps: frames per second.
        timeout_s: how long to wait for the file to be finished after the last frame.

    Returns:
        The number of frames written.

    Raises:
        EncodeError: no frames, a frame of another size, or a GStreamer error or timeout.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise EncodeError(f"{path}: no frames to encode")
    height, width = first.shape[:2]
    if first.shape != (height, width, 3) or first.dtype != np.uint8 or width % 2 or height % 2:
        raise EncodeError(
            f"{path}: expected uint8 (H, W, 3) frames with even H and W, "
            f"got {first.dtype} {first.shape}"
        )
    gst = _gst()
    caps = f"video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1"
    pipeline = gst.parse_launch(
        f"appsrc name=source format=time block=true caps={caps} "
        "! videoconvert ! video/x-raw,format=I420 "
        "! x264enc speed-preset=veryfast ! mp4mux ! filesink name=sink"
    )
    source = pipeline.get_by_name("source")
    source.set_property("max-bytes", QUEUED_FRAMES * width * height * 3)
    pipeline.get_by_name("sink").set_property("location", str(path))
    stride = -(-width * 3 // _ROW_ALIGN) * _ROW_ALIGN
    count = 0
    try:
        if pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            raise EncodeError(f"{path}: the encoding pipeline would not start")
        for frame in _chain(first, iterator):
            if frame.shape != first.shape:
                raise EncodeError(
                    f"{path}: frame {count} has shape {frame.shape}, expected {first.shape}"
                )
            buffer = gst.Buffer.new_wrapped(_packed(frame, stride))
            buffer.pts = gst.util_uint64_scale_int(count, gst.SECOND, fps)
            buffer.duration = gst.util_uint64_scale_int(1, gst.SECOND, fps)
            flow = source.emit("push-buffer", buffer)
            if flow != gst.FlowReturn.OK:
                problem = _bus_error(gst, pipeline, 0.0) or f"flow {flow.value_nick}"
                raise EncodeError(f"{path}: encoding failed at frame {count}: {problem}")
            count += 1
        source.emit("end-of-stream")
        problem = _bus_error(gst, pipeline, timeout_s)
        if problem is not None:
            raise EncodeError(f"{path}: encoding failed: {problem}")
    finally:
        pipeline.set_state(gst.State.NULL)
    log.debug("encoded %d frames of %dx%d into %s", count, width, height, path)
    return count


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def _packed(frame: np.ndarray, stride: int) -> bytes:
    """Frame bytes with each row padded to `stride` bytes, as GStreamer lays out RGB."""
    rows = np.ascontiguousarray(frame).reshape(frame.shape[0], -1)
    if rows.shape[1] != stride:
        rows = np.pad(rows, ((0, 0), (0, stride - rows.shape[1])))
    return rows.tobytes()


def count_frames(path: str | Path, timeout_s: float = EOS_TIMEOUT_S) -> tuple[int, int, int]:
    """Decode a video file with ``uridecodebin ! fakesink`` and count its frames.

    Returns:
        (frames, width, height) of the decoded video.

    Raises:
        EncodeError: the file is missing or cannot be decoded in time.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise EncodeError(f"{path}: no such file")
    gst = _gst()
    pipeline = gst.parse_launch(
        "uridecodebin name=decode ! video/x-raw "
        "! fakesink name=sink sync=false signal-handoffs=true"
    )
    pipeline.get_by_name("decode").set_property("uri", path.as_uri())
    seen = {"frames": 0, "size": (0, 0)}

    def handoff(_sink: Any, _buffer: Any, pad: Any) -> None:
        if seen["frames"] == 0:
            structure = pad.get_current_caps().get_structure(0)
            seen["size"] = (structure.get_value("width"), structure.get_value("height"))
        seen["frames"] += 1

    pipeline.get_by_name("sink").connect("handoff", handoff)
    try:
        if pipeline.set_state(gst.State.PLAYING) == gst.StateChangeReturn.FAILURE:
            raise EncodeError(f"{path}: the decoding pipeline would not start")
        problem = _bus_error(gst, pipeline, timeout_s)
        if problem is not None:
            raise EncodeError(f"{path}: decoding failed: {problem}")
    finally:
        pipeline.set_state(gst.State.NULL)
    width, height = seen["size"]
    return seen["frames"], width, height
