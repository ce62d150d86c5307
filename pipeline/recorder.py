"""Turning events into Kinetics-TPS predictions: the recorder behind `record` and the runner.

Each stream becomes one video, named by its stream id. The video's action is the label of the last
stream-level clip event (``track_id`` null) received for the stream: the clip parser's running
aggregate, or the whole-stream decision at its end; per-person clip events do not count. Only
the annotated frames are kept (every `ANNOTATION_STRIDE`-th,
``img_00001.json``, ``img_00006.json``, ...), each person with one proposal per detected part.

Part states: ``clip`` (default, the report's method) gives every part of a type the state of the
last clip decision for that type, in every frame, so early frames get the decision made with the
whole video (the report's video-level part labels). ``frame`` keeps the state
each frame event carried when it was published (what a live viewer saw). Parts without any state
are left out.

Missing annotated frames (they score 0) are told apart by the frame events' ``seq``, which counts a
stream's frame events from 0 without gaps. An annotated ``frame_index`` missing between two frame
events with consecutive ``seq`` never became an event: live mode's admission gate (`tpsstamp`
``max-in-flight``) skipped it by design, and dropped frames keep their index, so indices have gaps.
One missing where ``seq`` jumps was lost with the events that never arrived. The first is logged
at INFO, the second as a WARNING that also counts the lost events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from parsing.events import Event
from tps.formats import PredHuman, Prediction, PredPart
from tps.vocabulary import ANNOTATION_STRIDE, frame_key, part_type

log = logging.getLogger(__name__)

STATE_SOURCES: tuple[str, ...] = ("clip", "frame")


class RecordError(Exception):
    """A recorder was configured wrongly."""


def _annotated_between(after: int, before: int) -> int:
    """How many annotated frame indices lie strictly between `after` and `before`."""
    if before <= after + 1:
        return 0
    return (before - 1) // ANNOTATION_STRIDE - after // ANNOTATION_STRIDE


@dataclass
class _Stream:
    """What a recorder keeps of one stream."""

    label: str | None = None
    latest_states: dict[str, str] | None = None
    frames: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """Annotated frame index -> the frame event's humans."""
    last_index: int = -1
    """The frame index of the latest frame event (-1: none yet)."""
    last_seq: int = -1
    """The ``seq`` of the latest frame event (-1: none yet)."""
    skipped: int = 0
    """Annotated frames that never became events although no frame event was lost around them:
    skipped before publishing (live mode's admission gate)."""
    lost: int = 0
    """Annotated frames missing where frame events were lost (a gap in ``seq``)."""
    lost_events: int = 0
    """Frame events that never arrived, from the gaps in ``seq``."""

    def frame(self, index: int, seq: int) -> None:
        """Account for the annotated frames a frame event (`index`, `seq`) skipped over."""
        missing = _annotated_between(self.last_index, index)
        # seq starts again from 0 when a stream's publisher is opened anew (a restart).
        lost_events = seq - self.last_seq - 1 if seq > self.last_seq else seq
        self.lost_events += lost_events
        if lost_events:
            self.lost += missing
        else:
            self.skipped += missing
        self.last_index = max(self.last_index, index)
        self.last_seq = seq


class Recorder:
    """Collects frame and clip events of any number of streams into a `Prediction`.

    Args:
        states: ``clip`` or ``frame``, where part states come from (see the module docstring).
    """

    def __init__(self, states: str = "clip") -> None:
        if states not in STATE_SOURCES:
            raise RecordError(f"part states source {states!r}: expected one of {STATE_SOURCES}")
        self._states = states
        self._streams: dict[str, _Stream] = {}

    def add(self, event: Event) -> None:
        """Take one decoded event; status events are ignored."""
        if event["type"] == "status":
            return
        stream = self._streams.setdefault(event["stream"], _Stream())
        if event["type"] == "clip":
            states = {name: decision["state"] for name, decision in event["part_states"].items()}
            if event["track_id"] is None:  # the stream's decision, not one person's
                stream.label = event["action"]["label"]
                stream.latest_states = states
        else:
            index = event["frame_index"]
            stream.frame(index, event["seq"])
            if index % ANNOTATION_STRIDE == 0:
                stream.frames[index] = event["humans"]

    def prediction(self) -> Prediction:
        """The prediction of every stream with a clip decision, videos named by stream id."""
        labels: dict[str, str] = {}
        parts: dict[str, dict[str, list[PredHuman]]] = {}
        for name, stream in self._streams.items():
            if stream.label is None:
                log.warning("stream %s: no clip event, so no action; left out", name)
                continue
            labels[name] = stream.label
            parts[name] = {
                frame_key(index): [self._human(stream, human) for human in humans]
                for index, humans in sorted(stream.frames.items())
            }
            self._report_missing(name, stream)
        return Prediction(labels=labels, parts=parts)

    @staticmethod
    def _report_missing(name: str, stream: _Stream) -> None:
        """Log the annotated frames up to the last frame event that have no prediction."""
        expected = stream.last_index // ANNOTATION_STRIDE + 1
        if stream.skipped:
            log.info(
                "stream %s: %d of %d annotated frames never published, by design (live mode's "
                "admission gate skips frames; no event was lost), so they have no prediction",
                name,
                stream.skipped,
                expected,
            )
        if stream.lost or stream.lost_events:
            log.warning(
                "stream %s: %d of %d annotated frames lost with %d frame events that never "
                "arrived (gaps in seq)",
                name,
                stream.lost,
                expected,
                stream.lost_events,
            )

    def _human(self, stream: _Stream, human: dict[str, Any]) -> PredHuman:
        """One frame event human as a scorer human: one proposal per part that has a state."""
        clip_states = stream.latest_states
        parts = {}
        for name, part in human["parts"].items():
            if self._states == "clip" and clip_states is not None:
                state = clip_states[part_type(name)]
            else:
                state = part["state"]
            if state is not None:
                parts[name] = PredPart(
                    boxes=(tuple(part["box"]),), verbs=(state,), scores=(part["score"],)
                )
        return PredHuman(box=tuple(human["box"]), parts=parts, score=human["score"])
