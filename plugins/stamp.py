"""``tpsstamp``: names the stream and numbers its frames, first in every stream's chain.

Every later element needs the frame index (annotation keys, clip windows, events); the stamp
element opens each frame's `FrameRecord` in the side table and announces the stream name
downstream, so the elements after it find the record by (stream, PTS)::

    gst-launch-1.0 videotestsrc ! video/x-raw,format=RGB ! tpsstamp stream=cam0 ! fakesink
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from plugins.element import ElementSpec, FrameContext, Prop
from plugins.frames import FrameError, FrameTable, default_table
from plugins.hooks import hooks

log = logging.getLogger(__name__)


class StampStage:
    """Opens a record per frame, numbering frames `first_index`, +1, +2, ... from start.

    Args:
        stream: stream name written into every record.
        table: where records are opened.
        first_index: the first frame's index (a restarted stream continues its numbering).
    """

    def __init__(self, stream: str, table: FrameTable, first_index: int = 0) -> None:
        self.stream = stream
        self.table = table
        self.first_index = first_index
        self.next_index = first_index

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> StampStage:
        """The stage of a ``tpsstamp`` element, on the process-wide table."""
        return cls(str(values["stream"]), default_table(), int(values["first_index"]))

    def start(self) -> None:
        self.next_index = self.first_index
        self.table.clear(self.stream)

    def process(self, frame: FrameContext) -> None:
        if frame.pts_ns is None:
            raise FrameError(f"frame {self.next_index} of {self.stream!r} has no PTS")
        frame.frame_index = self.next_index
        frame.record = self.table.open(self.stream, self.next_index, frame.pts_ns)
        self.next_index += 1
        hooks().frame_in(self.stream)

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
    ),
    announces_stream=True,
)
