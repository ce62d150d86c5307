"""``tpsstamp``: names the stream and numbers its frames, first in every stream's chain.

Every later element needs the frame index (annotation keys, clip windows, events); the stamp
element opens each frame's `FrameRecord` in the side table and announces the stream name
downstream, so the elements after it find the record by (stream, PTS)::

    gst-launch-1.0 videotestsrc ! video/x-raw,format=RGB ! tpsstamp stream=cam0 ! fakesink

In live mode it also admits frames: with ``max-in-flight=K``, a frame that arrives while K frames
(of all the process's streams) are being parsed is dropped here and counted, rather than queued;
every parsed frame is a fresh one, and the latency stays near one pass through the parser however
many streams share the machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from plugins.element import ElementSpec, FrameContext, Prop
from plugins.frames import FrameError, FrameTable, default_table
from plugins.hooks import hooks

log = logging.getLogger(__name__)

LOST_AFTER_S = 10.0
"""The gate counts frames opened this recently: one in flight for longer was lost on its way
(a stream torn down mid-frame), and must not hold a place for ever."""


class StampStage:
    """Opens a record per frame, numbering frames `first_index`, +1, +2, ... from start.

    Args:
        stream: stream name written into every record.
        table: where records are opened.
        first_index: the first frame's index (a restarted stream continues its numbering).
        max_in_flight: drop a frame while this many frames, of every stream on `table`, are in
            flight (opened and not yet published); 0 admits every frame. Dropped frames keep their
            index, so indices stay the source's frame numbers.
    """

    def __init__(
        self, stream: str, table: FrameTable, first_index: int = 0, max_in_flight: int = 0
    ) -> None:
        self.stream = stream
        self.table = table
        self.first_index = first_index
        self.next_index = first_index
        self.max_in_flight = max_in_flight

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> StampStage:
        """The stage of a ``tpsstamp`` element, on the process-wide table."""
        return cls(
            str(values["stream"]),
            default_table(),
            int(values["first_index"]),
            int(values["max_in_flight"]),
        )

    def start(self) -> None:
        self.next_index = self.first_index
        self.table.clear(self.stream)

    def process(self, frame: FrameContext) -> None:
        if frame.pts_ns is None:
            raise FrameError(f"frame {self.next_index} of {self.stream!r} has no PTS")
        index = self.next_index
        self.next_index += 1
        hooks().frame_in(self.stream)
        in_flight = self.table.in_flight(within_s=LOST_AFTER_S) if self.max_in_flight else 0
        if self.max_in_flight and in_flight >= self.max_in_flight:
            frame.drop = True
            hooks().frame_dropped(self.stream)
            return
        frame.frame_index = index
        frame.record = self.table.open(self.stream, index, frame.pts_ns)

    def finish(self) -> None:
        """Nothing to flush: stamping is per frame."""

    def stop(self) -> None:
        log.debug("stream %s: stamped %d frames", self.stream, self.next_index)
        self.table.clear(self.stream)


STAMP = ElementSpec(
    name="tpsstamp",
    summary="Name the stream and number its frames in the TPS side table",
    stage_factory=StampStage.from_properties,
    properties=(
        Prop("stream", str, None, "Name of the stream (e.g. cam0)", required=True),
        Prop(
            "first-index", int, 0, "Index of the first frame (continues after a restart)", minimum=0
        ),  # fmt: skip
        Prop(
            "max-in-flight",
            int,
            0,
            "Drop frames while this many of all streams are parsed",
            minimum=0,
        ),
    ),
    announces_stream=True,
)
