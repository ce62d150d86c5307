"""H.264 MP4 writing and frame counting through GStreamer.

GStreamer is initialised on first use, never at import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from media.frames import RGB_CHANNELS, pack_rgb
from media.gst import Gst, init, rgb_caps, wait_eos
from tps.synth.errors import EncodeError

log = logging.getLogger(__name__)

EOS_TIMEOUT_S = 60.0
"""How long to wait for the muxer to finish after the last frame."""
QUEUED_FRAMES = 4
"""Frames appsrc may hold before `encode_h264` blocks, bounding memory."""


def _bus_error(pipeline: Gst.Pipeline, timeout_s: float) -> str | None:
    """Wait up to `timeout_s` for EOS or an error; None on EOS, else what went wrong."""
    message = wait_eos(pipeline, timeout_s)
    if message is None:
        return f"no end of stream within {timeout_s:.0f} s"
    if message.type == Gst.MessageType.ERROR:
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
    init()
    caps = rgb_caps(width, height, fps)
    pipeline = Gst.parse_launch(
        f"appsrc name=source format=time block=true caps={caps} "
        "! videoconvert ! video/x-raw,format=I420 "
        "! x264enc speed-preset=veryfast ! mp4mux ! filesink name=sink"
    )
    source = pipeline.get_by_name("source")
    source.set_property("max-bytes", QUEUED_FRAMES * width * height * RGB_CHANNELS)
    pipeline.get_by_name("sink").set_property("location", str(path))
    count = 0
    try:
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise EncodeError(f"{path}: the encoding pipeline would not start")
        for frame in _chain(first, iterator):
            if frame.shape != first.shape:
                raise EncodeError(
                    f"{path}: frame {count} has shape {frame.shape}, expected {first.shape}"
                )
            buffer = Gst.Buffer.new_wrapped(pack_rgb(frame))
            buffer.pts = Gst.util_uint64_scale_int(count, Gst.SECOND, fps)
            buffer.duration = Gst.util_uint64_scale_int(1, Gst.SECOND, fps)
            flow = source.emit("push-buffer", buffer)
            if flow != Gst.FlowReturn.OK:
                problem = _bus_error(pipeline, 0.0) or f"flow {flow.value_nick}"
                raise EncodeError(f"{path}: encoding failed at frame {count}: {problem}")
            count += 1
        source.emit("end-of-stream")
        problem = _bus_error(pipeline, timeout_s)
        if problem is not None:
            raise EncodeError(f"{path}: encoding failed: {problem}")
    finally:
        pipeline.set_state(Gst.State.NULL)
    log.debug("encoded %d frames of %dx%d into %s", count, width, height, path)
    return count


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


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
    init()
    pipeline = Gst.parse_launch(
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
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise EncodeError(f"{path}: the decoding pipeline would not start")
        problem = _bus_error(pipeline, timeout_s)
        if problem is not None:
            raise EncodeError(f"{path}: decoding failed: {problem}")
    finally:
        pipeline.set_state(Gst.State.NULL)
    width, height = seen["size"]
    return seen["frames"], width, height
