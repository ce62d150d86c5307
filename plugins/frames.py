"""Frames between our elements: the per-frame side table (mapping a buffer is `media.frames`).

`FrameTable` carries per-frame results from one element to the next. GstMeta written in Python is
awkward on GStreamer 1.22, so records live beside the buffers, keyed by (stream, frame index): the
`tpsstamp` element numbers each frame, writes the number into the buffer's offset (GStreamer's
field for a video frame's number) and opens its record; the elements after it find the record by
that number, and the last one releases it. Timestamps are no key: decoders give two frames the same
PTS (B-frames in AVI) or none at all, and each such frame still has its own record. The table is
bounded: records older than `max_age_frames` frames of their stream, or beyond `max_records` in
all, are evicted when new ones are opened, so frames dropped by a leaky queue never leak.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the side table loads no model code
    from models.detection import Detections
    from parsing.frame_parser import Persons
    from parsing.results import ClipResult, FrameResult, HumanResult

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_FRAMES = 256
DEFAULT_MAX_RECORDS = 4096


@dataclass(slots=True)
class FrameRecord:
    """What our elements know about one frame of one stream.

    Attributes:
        stream: the stream name given to `tpsstamp`.
        frame_index: 0-based index of the frame within the stream.
        pts_ns: presentation time of the buffer in nanoseconds (None when it has none; frames may
            share one).
        opened_ns: `time.monotonic_ns()` when the record was opened, for end-to-end latency.
        detections: the persons ``tpsperson`` detected (None until it ran).
        persons: their poses and refined boxes, from ``tpspose`` (None until it ran).
        humans: the humans with their parts, from ``tpsparts``, no part states yet (None until it
            ran).
        clips: the clip decisions ``tpsclip`` took at this frame (stream-wide and per track).
        frame: the frame's final result with part states, from ``tpsclip`` (None until it ran).

    Each stage writes its own fields and reads those of the stages before it.
    """

    stream: str
    frame_index: int
    pts_ns: int | None
    opened_ns: int = field(default_factory=time.monotonic_ns)
    detections: Detections | None = None
    persons: Persons | None = None
    humans: tuple[HumanResult, ...] | None = None
    clips: tuple[ClipResult, ...] = ()
    frame: FrameResult | None = None


class FrameTable:
    """Thread-safe, bounded map from (stream, frame_index) to `FrameRecord`.

    Args:
        max_age_frames: a record is evicted once its stream has opened a record this many frames
            later.
        max_records: hard cap over all streams; the oldest records go first.
    """

    def __init__(
        self, max_age_frames: int = DEFAULT_MAX_AGE_FRAMES, max_records: int = DEFAULT_MAX_RECORDS
    ) -> None:
        if max_age_frames < 1 or max_records < 1:
            raise ValueError(
                f"FrameTable bounds must be >= 1, got max_age_frames={max_age_frames},"
                f" max_records={max_records}"
            )
        self.max_age_frames = max_age_frames
        self.max_records = max_records
        self._records: OrderedDict[tuple[str, int], FrameRecord] = OrderedDict()
        self._opened: dict[str, deque[FrameRecord]] = {}
        """Per stream, records in the order they were opened (some may be released already)."""
        self._live: Counter[str] = Counter()
        """Per stream, records opened and not yet released or evicted: frames in flight."""
        self._lock = threading.Lock()
        self.evicted = 0
        """Records removed by age or capacity rather than released: frames nobody finished."""

    def open(self, stream: str, frame_index: int, pts_ns: int | None) -> FrameRecord:
        """Create (or replace) the record of a frame and evict stale ones."""
        record = FrameRecord(stream, frame_index, pts_ns)
        with self._lock:
            key = (stream, frame_index)
            if self._records.pop(key, None) is None:
                self._live[stream] += 1
            self._records[key] = record
            self._opened.setdefault(stream, deque()).append(record)
            self._evict(stream, frame_index)
        return record

    def get(self, stream: str, frame_index: int) -> FrameRecord | None:
        """The record of a frame, or None when it was never opened or is gone."""
        with self._lock:
            return self._records.get((stream, frame_index))

    def release(self, stream: str, frame_index: int) -> FrameRecord | None:
        """Remove and return the record of a frame: called by the last element that reads it."""
        with self._lock:
            record = self._records.pop((stream, frame_index), None)
            if record is not None:
                self._live[stream] -= 1
            return record

    def in_flight(self, stream: str | None = None, within_s: float | None = None) -> int:
        """Frames opened and not yet released (nor evicted), of `stream` or of every stream.

        With `within_s`, only frames opened in the last `within_s` seconds count: a record left
        behind by a frame that was lost on its way (never published) stops counting then.
        """
        with self._lock:
            if within_s is None:
                return self._live[stream] if stream is not None else self._live.total()
            cutoff = time.monotonic_ns() - int(within_s * 1e9)
            count = 0
            for record in reversed(self._records.values()):  # newest first
                if record.opened_ns < cutoff:
                    break
                count += stream is None or record.stream == stream
            return count

    def clear(self, stream: str) -> None:
        """Forget every record of `stream` (the stream stopped)."""
        with self._lock:
            for record in self._opened.pop(stream, ()):
                self._records.pop((record.stream, record.frame_index), None)
            self._live.pop(stream, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def _evict(self, stream: str, newest_index: int) -> None:
        """Drop records of `stream` older than the age bound, then the oldest over capacity."""
        opened = self._opened[stream]
        dropped = 0
        while opened and opened[0].frame_index <= newest_index - self.max_age_frames:
            record = opened.popleft()
            key = (record.stream, record.frame_index)
            if self._records.get(key) is record:
                del self._records[key]
                self._live[stream] -= 1
                dropped += 1
        while len(self._records) > self.max_records:
            (oldest_stream, _), _ = self._records.popitem(last=False)
            self._live[oldest_stream] -= 1
            dropped += 1
        while len(opened) > self.max_records:
            opened.popleft()
        if dropped:
            self.evicted += dropped
            log.debug(
                "frame table: evicted %d stale records (newest %s/%d)",
                dropped,
                stream,
                newest_index,
            )
