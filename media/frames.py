"""Packed RGB frames in GStreamer buffers: row padding, zero-copy mapping, packing.

GStreamer pads each row of a packed RGB frame to a multiple of 4 bytes (GST_ROUND_UP_4) unless a
VideoMeta says otherwise; this module is the one place that knows it. `map_rgb` maps a
`Gst.Buffer` holding one frame as a (H, W, 3) uint8 numpy view of the buffer's own memory (no
copy) and always unmaps on exit: the view is only valid inside the ``with`` block, so copy what
must outlive it. `pack_rgb` lays a frame out as GStreamer expects it, for an ``appsrc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402

RGB_CHANNELS = 3
ROW_ALIGN_BYTES = 4
"""GStreamer pads each packed RGB row to a multiple of 4 bytes (GST_ROUND_UP_4)."""


class FrameError(Exception):
    """A buffer does not hold the RGB frame its caps promise, or cannot be mapped."""


def rgb_stride(width: int) -> int:
    """Bytes per row of a packed RGB frame `width` pixels wide, padded as GStreamer pads it."""
    row = width * RGB_CHANNELS
    return (row + ROW_ALIGN_BYTES - 1) // ROW_ALIGN_BYTES * ROW_ALIGN_BYTES


def _plane_layout(buffer: Gst.Buffer, width: int) -> tuple[int, int]:
    """(offset, stride) in bytes of the RGB plane: from the buffer's VideoMeta, else the default."""
    meta = GstVideo.buffer_get_video_meta(buffer)
    if meta is not None:
        return meta.offset[0], meta.stride[0]
    return 0, rgb_stride(width)


@contextmanager
def map_rgb(
    buffer: Gst.Buffer, width: int, height: int, writable: bool = False
) -> Iterator[np.ndarray]:
    """Map `buffer` as a (height, width, 3) uint8 RGB view of its memory; always unmaps.

    Args:
        buffer: one packed RGB frame (caps ``video/x-raw,format=RGB``).
        width: frame width in pixels, from the negotiated caps.
        height: frame height in pixels.
        writable: map for writing (the element must own a writable buffer); otherwise the view is
            read-only and writing to it raises ValueError.

    Yields:
        (H, W, 3) uint8 view with row stride taken from the buffer's VideoMeta or, without one, the
        4-byte-aligned default. Valid only inside the ``with`` block.

    Raises:
        FrameError: the buffer cannot be mapped or is smaller than the frame.
    """
    offset, stride = _plane_layout(buffer, width)
    flags = Gst.MapFlags.READ | (Gst.MapFlags.WRITE if writable else Gst.MapFlags(0))
    ok, info = buffer.map(flags)
    if not ok:
        raise FrameError(f"cannot map buffer {'read-write' if writable else 'read-only'}")
    try:
        needed = offset + stride * (height - 1) + width * RGB_CHANNELS
        if info.size < needed:
            raise FrameError(
                f"RGB buffer for {width}x{height} (stride {stride}) needs {needed} bytes,"
                f" got {info.size}"
            )
        yield np.ndarray(
            (height, width, RGB_CHANNELS),
            dtype=np.uint8,
            buffer=info.data,
            offset=offset,
            strides=(stride, RGB_CHANNELS, 1),
        )
    finally:
        buffer.unmap(info)


def pack_rgb(frame: np.ndarray) -> bytes:
    """The bytes of a (H, W, 3) uint8 frame, rows padded to `rgb_stride` as GStreamer pads them."""
    height, width = frame.shape[:2]
    rows = np.zeros((height, rgb_stride(width)), dtype=np.uint8)
    rows[:, : width * RGB_CHANNELS] = frame.reshape(height, -1)
    return rows.tobytes()
