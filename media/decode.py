"""The one loop that pulls decoded RGB frames out of an appsink into Python.

`tps.video.read_frames` and `pipeline.sources.iterate_frames` each build their own pipeline and
hand it to `pull_frames`, which plays it, yields every frame the appsink receives (lossless: the
appsink must not drop), checks the bus between bounded pulls, bounds the wait for each frame and
always leaves the pipeline in NULL. Why it gave up is told by the type of `DecodeError`, so each
caller words the failure in its own terms.
"""

from __future__ import annotations

import time
from collections.abc import Generator

import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402

from media.frames import map_rgb  # noqa: E402
from media.gst import NS_PER_S, GstError, caps_size, pending_error  # noqa: E402

del GstApp  # imported for its side effect: appsink gains try_pull_sample / is_eos


class DecodeError(GstError):
    """`pull_frames` gave up: `detail` is the bus error as one line (None when there was none),
    `frames` the number of frames yielded before."""

    def __init__(self, message: str, detail: str | None = None, frames: int = 0) -> None:
        super().__init__(message)
        self.detail = detail
        self.frames = frames


class StartFailed(DecodeError):
    """The pipeline would not go to PLAYING."""


class StreamFailed(DecodeError):
    """An element posted an error while frames were being pulled."""


class Stalled(DecodeError):
    """Neither a frame nor the end of the stream came within the timeout."""


def pull_frames(
    pipeline: Gst.Pipeline, sink_name: str, timeout_s: float, poll_s: float
) -> Generator[tuple[int, int | None, np.ndarray], None, int]:
    """Play `pipeline` and yield every frame its RGB appsink `sink_name` receives, until EOS.

    Args:
        pipeline: a built pipeline in NULL, ending in ``appsink name=<sink_name>`` after packed
            RGB caps; it is left in NULL when the loop ends, fails or is closed.
        sink_name: the appsink's name.
        timeout_s: longest wait for any one frame (the first one includes preroll); the time the
            consumer spends between frames does not count.
        poll_s: slice of that wait after which the bus is checked for an error.

    Yields:
        (frame_index, pts_ns, rgb): 0-based index, presentation time in ns (None if the buffer
        has none) and a (H, W, 3) uint8 RGB copy of the frame.

    Returns:
        The number of frames yielded.

    Raises:
        StartFailed: the pipeline cannot start; its message is the bus error or "cannot start".
        StreamFailed: an element posts an error; its message is that error as one line.
        Stalled: nothing within `timeout_s`; its message is "no frame within <timeout_s> s".
        GstError, media.frames.FrameError: a sample without a fixed size or a mappable buffer.
    """
    sink = pipeline.get_by_name(sink_name)
    try:
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            detail = pending_error(pipeline)
            raise StartFailed(detail or "cannot start", detail)
        index = 0
        waited_since = time.monotonic()
        while True:
            sample = sink.try_pull_sample(int(poll_s * NS_PER_S))
            if sample is None:
                detail = pending_error(pipeline)
                if detail is not None:
                    raise StreamFailed(detail, detail, index)
                if sink.is_eos():
                    return index
                if time.monotonic() - waited_since > timeout_s:
                    raise Stalled(f"no frame within {timeout_s:g} s", None, index)
                continue
            buffer = sample.get_buffer()
            width, height = caps_size(sample.get_caps())
            with map_rgb(buffer, width, height) as rgb:
                frame = rgb.copy()
            pts = None if buffer.pts == Gst.CLOCK_TIME_NONE else buffer.pts
            yield index, pts, frame
            index += 1
            waited_since = time.monotonic()
    finally:
        pipeline.set_state(Gst.State.NULL)
