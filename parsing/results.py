"""The result types: what the parsers produce per frame and per clip, and the state of a stream.

One small module of plain frozen dataclasses; converters to events live in `parsing.events`, not on
the types. Fields are plain Python values (ints, floats, strings, tuples, dicts) so that encoding is
a cheap, explicit walk with no array conversions. Producers convert their arrays once, when they
build a result (e.g. ``tuple(map(tuple, keypoints_xys.tolist()))``).

Coordinates are pixels of the full decoded frame (not of a crop), origin at the top-left corner,
x to the right, y down. Boxes are ``(x1, y1, x2, y2)`` floats with ``x1 <= x2`` and ``y1 <= y2``.

The constructors check shapes and vocabulary (cheap: a few dozen comparisons per human) and raise
`ResultError`, so a malformed result fails where it is made rather than in a subscriber.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from tps.vocabulary import PART_TYPES, PARTS

PartBoxes = dict[str, tuple[np.ndarray, float]]
"""One person's parts as the part stage finds them: part name -> ((4,) float32 box in frame
pixels, score: the detector's, or the keypoints' for a box derived from them)."""
Box = tuple[float, float, float, float]
"""``(x1, y1, x2, y2)`` in frame pixels."""

Keypoint = tuple[float, float, float]
"""``(x, y, score)``: frame pixels and a confidence in [0, 1]."""

NUM_KEYPOINTS = 17
"""COCO-17 keypoints, in COCO order (0 nose ... 16 right ankle)."""

BOX_LENGTH = 4
KEYPOINT_LENGTH = 3
TOP_K = 5
"""Clip decisions carry at most this many ``(label, probability)`` alternatives."""

StreamState = Literal["starting", "playing", "reconnecting", "eos", "error", "stopped"]
STREAM_STATES: tuple[str, ...] = get_args(StreamState)
FINAL_STATES: frozenset[str] = frozenset({"eos", "stopped"})
"""States after which a stream sends nothing more: ``eos`` (a finite stream ended), ``stopped``."""


class ResultError(ValueError):
    """A result does not have the shape or vocabulary its type promises."""


def _check_box(box: tuple[float, ...], what: str) -> None:
    """Raise unless `box` has 4 values ordered as x1 <= x2, y1 <= y2."""
    if len(box) != BOX_LENGTH:
        raise ResultError(f"{what}: expected 4 values (x1, y1, x2, y2), got {len(box)}")
    if box[0] > box[2] or box[1] > box[3]:
        raise ResultError(f"{what}: expected x1 <= x2 and y1 <= y2, got {tuple(box)}")


@dataclass(frozen=True, slots=True)
class PartState:
    """The state of one part type as decided by a clip classifier.

    Attributes:
        state: a part state, e.g. ``"bend"`` (``tps.vocabulary.STATES`` lists the public ones).
        score: the classifier's probability of that state, in [0, 1].
    """

    state: str
    score: float


@dataclass(frozen=True, slots=True)
class PartResult:
    """One body part of one person in one frame: the part detector's top-1 box and its state.

    Attributes:
        box: ``(x1, y1, x2, y2)`` frame pixels.
        score: the part detector's confidence in [0, 1].
        state: the part's state (from the latest clip decision for its part type), or None while no
            clip has been classified yet.
        state_score: the probability of `state`, None exactly when `state` is None.
    """

    box: Box
    score: float
    state: str | None = None
    state_score: float | None = None

    def __post_init__(self) -> None:
        _check_box(self.box, "part box")
        if (self.state is None) != (self.state_score is None):
            raise ResultError(
                f"part state and state_score: expected both or neither, got "
                f"state={self.state!r}, state_score={self.state_score!r}"
            )


@dataclass(frozen=True, slots=True)
class HumanResult:
    """One person in one frame.

    Attributes:
        box: ``(x1, y1, x2, y2)`` frame pixels, refined to contain the confident keypoints.
        score: the person detector's confidence in [0, 1].
        keypoints: 17 COCO keypoints, each ``(x, y, score)`` in frame pixels.
        parts: part name (``tps.vocabulary.PARTS``) -> result; parts not found are absent.
        track_id: a tracker's identity for this person, None without a tracker.
    """

    box: Box
    score: float
    keypoints: tuple[Keypoint, ...]
    parts: Mapping[str, PartResult] = field(default_factory=dict)
    track_id: int | None = None

    def __post_init__(self) -> None:
        _check_box(self.box, "human box")
        if len(self.keypoints) != NUM_KEYPOINTS:
            raise ResultError(f"keypoints: expected {NUM_KEYPOINTS}, got {len(self.keypoints)}")
        for index, keypoint in enumerate(self.keypoints):
            if len(keypoint) != KEYPOINT_LENGTH:
                raise ResultError(
                    f"keypoint {index}: expected 3 values (x, y, score), got {len(keypoint)}"
                )
        unknown = sorted(set(self.parts) - set(PARTS))
        if unknown:
            raise ResultError(f"parts: unknown part names {unknown}, expected some of {PARTS}")


@dataclass(frozen=True, slots=True)
class ClipResult:
    """The decision of the clip classifiers for one window of frames.

    Attributes:
        stream: the stream id.
        start_frame: 0-based index of the first frame of the window.
        end_frame: 0-based index of the last frame of the window (inclusive).
        wall_ns: wall-clock time (``time.time_ns()``) when the decision was made.
        label: the video action label (top-1).
        score: its probability in [0, 1].
        top5: up to 5 ``(label, probability)`` pairs, best first; the first is `label`.
        part_states: part type (all 6 of ``tps.vocabulary.PART_TYPES``) -> its state.
        track_id: the person the clip was classified for, None for the whole frame.
        model_set: the model set of the networks that decided it (as in `FrameResult`), None
            where unknown.
    """

    stream: str
    start_frame: int
    end_frame: int
    wall_ns: int
    label: str
    score: float
    top5: tuple[tuple[str, float], ...]
    part_states: Mapping[str, PartState]
    track_id: int | None = None
    model_set: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.start_frame <= self.end_frame:
            raise ResultError(
                f"clip frames: expected 0 <= start_frame <= end_frame, got "
                f"{self.start_frame}..{self.end_frame}"
            )
        if not 1 <= len(self.top5) <= TOP_K:
            raise ResultError(
                f"top5: expected 1 to {TOP_K} (label, score) pairs, got {len(self.top5)}"
            )
        if set(self.part_states) != set(PART_TYPES):
            raise ResultError(
                f"part_states: expected the part types {PART_TYPES}, got {tuple(self.part_states)}"
            )


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything parsed from one frame of one stream.

    Attributes:
        stream: the stream id.
        frame_index: 0-based index of the frame in its stream.
        pts_ns: the buffer's presentation timestamp in nanoseconds, None when it has none.
        wall_ns: wall-clock time (``time.time_ns()``) when the frame was parsed.
        width: frame width in pixels.
        height: frame height in pixels.
        humans: the persons found, best score first (at most the detector's top-k).
        latest_clip: the latest clip decision of this stream when the frame was parsed, None before
            the first one.
        model_set: the model set of the networks that parsed it (``synthetic``, ``real``, ``user``
            or ``mixed``; `parsing.networks.model_set`), None where unknown.
    """

    stream: str
    frame_index: int
    pts_ns: int | None
    wall_ns: int
    width: int
    height: int
    humans: tuple[HumanResult, ...] = ()
    latest_clip: ClipResult | None = None
    model_set: str | None = None

    def __post_init__(self) -> None:
        if self.frame_index < 0:
            raise ResultError(f"frame_index: expected >= 0, got {self.frame_index}")
        if self.latest_clip is not None and self.latest_clip.stream != self.stream:
            raise ResultError(
                f"latest_clip: expected stream {self.stream!r}, got {self.latest_clip.stream!r}"
            )


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """A change in the life of a stream, for subscribers and supervision.

    Attributes:
        stream: the stream id.
        state: one of `STREAM_STATES`; ``eos`` is the last message of a finite stream.
        detail: a human-readable line (the error, the source URI, ...), may be empty.
        wall_ns: wall-clock time (``time.time_ns()``) of the change.
        model_set: the model set of the stream's parser (as in `FrameResult`), None where unknown.
        networks: (role, network name) of each network the parser loaded, e.g.
            ``("person", "movenet_multipose_lightning")``.
    """

    stream: str
    state: StreamState
    detail: str
    wall_ns: int
    model_set: str | None = None
    networks: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.state not in STREAM_STATES:
            raise ResultError(f"stream state: expected one of {STREAM_STATES}, got {self.state!r}")
