"""``tpsstamp``: names the stream and numbers its frames, first in every stream's chain.

Every later element needs the frame index (annotation keys, clip windows, events); the stamp
element opens each frame's `FrameRecord` in the side table, writes the index into the buffer offset
and announces the stream name downstream, so the elements after it find the record by (stream,
index). Every frame is numbered, whatever its PTS: decoders repeat timestamps (B-frames in AVI)
or leave them unset::

    gst-launch-1.0 videotestsrc ! video/x-raw,format=RGB ! tpsstamp stream=cam0 ! fakesink

In live mode it also admits frames: with ``max-in-flight=K``, a frame that arrives while K frames
(of all the process's streams) are being parsed, or while a free place waits for another stream's
turn (`FairGate`), is dropped here and counted, rather than queued; every parsed frame is a fresh
one, and the latency stays near one pass through the parser however many streams share the
machine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.frames import FrameTable
from plugins.gate import FairGate
from plugins.hooks import Hooks

log = logging.getLogger(__name__)

LOST_AFTER_S = 10.0
"""The gate counts frames opened this recently: one in flight for longer was lost on its way
(a stream torn down mid-frame), and must not hold a place for ever."""


class StampStage:
    """Opens a record per frame, numbering frames `first_index`, +1, +2, ... from start.

    Args:
        stream: stream name written into every record.
        table: where records are opened.
        gate: whose turn it is, shared by the streams on `table`.
        hooks: told of every frame in and every frame dropped.
        first_index: the first frame's index (a restarted stream continues its numbering).
        max_in_flight: drop a frame while this many frames, of every stream on `table`, are in
            flight (opened and not yet published), or while a free place waits for another
            stream's turn (`FairGate`); 0 admits every frame. Dropped frames keep their index, so
            indices stay the source's frame numbers.
    """

    def __init__(
        self,
        stream: str,
        table: FrameTable,
        gate: FairGate,
        hooks: Hooks,
        first_index: int = 0,
        max_in_flight: int = 0,
    ) -> None:
        self.stream = stream
        self.table = table
        self.first_index = first_index
        self.next_index = first_index
        self.max_in_flight = max_in_flight
        self.gate = gate
        self.hooks = hooks

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], context: ProcessContext) -> StampStage:
        """The stage of a ``tpsstamp`` element, on its process's table and gate."""
        return cls(
            str(values["stream"]),
            context.table,
            context.gate,
            context.hooks,
            int(values["first_index"]),
            int(values["max_in_flight"]),
        )

    def start(self) -> None:
        self.next_index = self.first_index
        self.table.clear(self.stream)

    def process(self, frame: FrameContext) -> None:
        index = self.next_index
        self.next_index += 1
        self.hooks.frame_in(self.stream)
        if self.max_in_flight and not self.gate.admit(
            self.stream, self.table.in_flight(within_s=LOST_AFTER_S) < self.max_in_flight
        ):
            frame.drop = True
            self.hooks.frame_dropped(self.stream)
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
