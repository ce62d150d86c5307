"""Decode a video file into RGB frames through GStreamer, for training and evaluation.

``filesrc ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink``, pulled by the one
decode loop (`media.decode.pull_frames`) with a bounded wait per frame. GStreamer is initialised
on the first call, never at import. Row padding is cut off there, so callers always get dense
(H, W, 3) arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

import numpy as np

from media.decode import Stalled, StartFailed, StreamFailed, pull_frames
from media.frames import FrameError
from media.gst import GstError, parse_launch

log = logging.getLogger(__name__)

FRAME_TIMEOUT_S = 10.0
"""Longest wait for one decoded frame (or the end of the stream) before giving up."""
POLL_S = 0.05
"""Slice of that wait after which the bus is checked for a decoding error."""
_PIPELINE = (
    "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
    "appsink name=sink sync=false"
)


class VideoError(Exception):
    """A video file is missing, cannot be decoded, or lacks the frames asked for."""


def _decode(path: Path, last: int | None) -> list[np.ndarray]:
    """Every frame of `path` up to index `last` (all of them when None), in order.

    Raises:
        VideoError: the decoder cannot be built or started, fails, or stalls.
    """
    try:
        pipeline = parse_launch(_PIPELINE)
    except GstError as error:
        raise VideoError(f"{path}: cannot build the decoder ({error})") from error
    pipeline.get_by_name("src").set_property("location", str(path))
    decoded: list[np.ndarray] = []
    try:
        with closing(pull_frames(pipeline, "sink", FRAME_TIMEOUT_S, POLL_S)) as frames:
            for _index, _pts, frame in frames:
                decoded.append(frame)
                if last is not None and len(decoded) > last:
                    break
    except StartFailed as error:
        raise VideoError(f"{path}: the decoder cannot start ({error.detail})") from error
    except StreamFailed as error:
        raise VideoError(f"cannot decode {path}: {error}") from error
    except Stalled as error:
        raise VideoError(f"{path}: {error} after frame {error.frames}") from error
    except (GstError, FrameError) as error:
        raise VideoError(f"{path}: {error}") from error
    return decoded


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
    decoded = _decode(path, last)
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
