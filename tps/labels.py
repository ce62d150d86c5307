"""The report's part-label transform and the prior baseline built on it.

Part-state parsing becomes video classification: each video gets six *part labels*
``<action>_<PartType>_<state>``, one per part type, where ``state`` is the most frequent state of
that part type over every annotated human and frame of the video (left and right parts pool into
one type), e.g. ``belly_dancing_Head_none``. At test time every detected part of a type gets the
state of the predicted label.

Ties between equally frequent states go to the alphabetically first state name, so the result
never depends on frame or human order. A part type the video never annotates gets
`MISSING_STATE`.

The baselines guess the states: ``prior`` takes each (action, part type)'s most frequent state in
a training set (the report's model-free baseline), ``video-labels`` each test video's own part
labels (the ceiling of the label transform). Boxes and action are the test ground truth's (an
oracle) unless given: boxes from a detector's prediction, and the action either the ground truth's
or, with no model at all, the training set's most frequent action.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tps.formats import Frames, GroundTruth, GtHuman, PredHuman, Prediction, PredPart
from tps.vocabulary import PART_TYPES, part_type

log = logging.getLogger(__name__)

MISSING_STATE = "none"
"""The state given to a part type that has no annotation to count (``none`` = no movement)."""

BaselineMode = Literal["prior", "video-labels"]
BASELINE_MODES: tuple[BaselineMode, ...] = ("prior", "video-labels")
BaselineAction = Literal["gt", "most-frequent", "boxes"]
BASELINE_ACTIONS: tuple[BaselineAction, ...] = ("gt", "most-frequent", "boxes")

_TYPE_WORDS = "|".join(type_name.capitalize() for type_name in PART_TYPES)
_LABEL = re.compile(rf"^(?P<action>.+?)_(?P<type>{_TYPE_WORDS})_(?P<state>.+)$")


class LabelError(Exception):
    """A part label cannot be parsed, or a baseline mode is unknown."""


def label_name(action: str, part_type_name: str, state: str) -> str:
    """``("belly_dancing", "head", "none")`` -> ``"belly_dancing_Head_none"``."""
    return f"{action}_{part_type_name.capitalize()}_{state}"


def parse_label(label: str) -> tuple[str, str, str]:
    """``"belly_dancing_Head_none"`` -> ``("belly_dancing", "head", "none")``.

    The capitalised part type separates action and state, both of which may contain underscores
    (``hurling_(sport)``, ``step_on``); actions and states are lower case.

    Raises:
        LabelError: `label` has no ``_<PartType>_`` separator.
    """
    match = _LABEL.match(label)
    if match is None:
        raise LabelError(
            f"part label {label!r}: expected <action>_<PartType>_<state> with PartType one of "
            f"{_TYPE_WORDS.replace('|', ', ')}"
        )
    return match["action"], match["type"].lower(), match["state"]


def state_of_label(label: str) -> str:
    """The state of a part label: ``"lunge_Leg_step_on"`` -> ``"step_on"``."""
    return parse_label(label)[2]


def _most_frequent(counts: Counter[str]) -> str:
    """The most frequent state; ties go to the alphabetically first; `MISSING_STATE` if empty."""
    if not counts:
        return MISSING_STATE
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]


def _count_states(frames: Frames[GtHuman], counts: dict[str, Counter[str]]) -> None:
    """Add every annotated part's state of `frames` to ``counts[part type]``."""
    for humans in frames.values():
        for human in humans:
            for name, part in human.parts.items():
                counts[part_type(name)][part.verb] += 1


def _new_counts() -> dict[str, Counter[str]]:
    return {type_name: Counter() for type_name in PART_TYPES}


def video_states(frames: Frames[GtHuman]) -> dict[str, str]:
    """Part type -> most frequent state of that type in one video (all 6 part types)."""
    counts = _new_counts()
    _count_states(frames, counts)
    return {type_name: _most_frequent(counts[type_name]) for type_name in PART_TYPES}


def part_labels(action: str, frames: Frames[GtHuman]) -> dict[str, str]:
    """The six part labels of a video: part type -> ``<action>_<PartType>_<state>``."""
    return {
        type_name: label_name(action, type_name, state)
        for type_name, state in video_states(frames).items()
    }


@dataclass(frozen=True)
class PriorTable:
    """The most frequent state per (action, part type) in a training set.

    Attributes:
        states: (action, part type) -> most frequent state over all annotated parts of that type
            in all training videos of that action.
        fallback: part type -> most frequent state over the whole training set, used for actions
            the training set lacks.
    """

    states: dict[tuple[str, str], str]
    fallback: dict[str, str]

    @classmethod
    def fit(cls, gt: GroundTruth) -> PriorTable:
        """Count the states of every annotated part of `gt`."""
        by_action: dict[str, dict[str, Counter[str]]] = {}
        overall = _new_counts()
        for video, action in gt.labels.items():
            counts = by_action.setdefault(action, _new_counts())
            _count_states(gt.parts.get(video, {}), counts)
        for counts in by_action.values():
            for type_name, counter in counts.items():
                overall[type_name].update(counter)
        states = {
            (action, type_name): _most_frequent(counter)
            for action, counts in by_action.items()
            for type_name, counter in counts.items()
            if counter
        }
        fallback = {type_name: _most_frequent(overall[type_name]) for type_name in PART_TYPES}
        log.debug("prior table: %d actions, %d cells", len(by_action), len(states))
        return cls(states=states, fallback=fallback)

    def save(self, path: str | Path) -> None:
        """Write the table as JSON: {"states": {action: {part type: state}}, "fallback": {...}}."""
        states: dict[str, dict[str, str]] = {}
        for (action, type_name), state in sorted(self.states.items()):
            states.setdefault(action, {})[type_name] = state
        Path(path).write_text(json.dumps({"states": states, "fallback": self.fallback}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> PriorTable:
        """Read a table written by `save`.

        Raises:
            LabelError: the file is missing or not such a table.
        """
        try:
            data = json.loads(Path(path).read_text())
            states = {
                (action, type_name): state
                for action, by_type in data["states"].items()
                for type_name, state in by_type.items()
            }
            return cls(states=states, fallback=dict(data["fallback"]))
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as error:
            raise LabelError(f"prior table {path}: cannot read it ({error})") from error

    def state(self, action: str, part_type_name: str) -> str:
        """The prior state of a part type for an action (the fallback if the pair is unseen)."""
        state = self.states.get((action, part_type_name))
        if state is None:
            return self.fallback.get(part_type_name, MISSING_STATE)
        return state


def _oracle_humans(humans: Iterable[GtHuman], states: dict[str, str]) -> list[PredHuman]:
    """GT humans as predictions: GT boxes, one proposal per part, the state of its part type."""
    return [
        PredHuman(
            box=human.box,
            parts={
                name: PredPart(boxes=(part.box,), verbs=(states[part_type(name)],))
                for name, part in human.parts.items()
            },
        )
        for human in humans
    ]


def _restated_humans(humans: Iterable[PredHuman], states: dict[str, str]) -> list[PredHuman]:
    """Predicted humans with every proposal's state replaced by the state of its part type."""
    return [
        PredHuman(
            box=human.box,
            parts={
                name: PredPart(part.boxes, (states[part_type(name)],) * len(part.boxes))
                for name, part in human.parts.items()
            },
            score=human.score,
        )
        for human in humans
    ]


def most_frequent_action(gt: GroundTruth) -> str:
    """The action of the most videos in `gt` (ties: alphabetically first)."""
    if not gt.labels:
        raise LabelError("most frequent action: the ground truth has no video")
    return _most_frequent(Counter(gt.labels.values()))


def baseline(
    train: GroundTruth,
    test: GroundTruth,
    mode: BaselineMode = "prior",
    *,
    boxes: Prediction | None = None,
    action: BaselineAction = "gt",
) -> Prediction:
    """A prediction for `test` that guesses the part states, and optionally its boxes and action.

    Args:
        train: training ground truth: the prior table and the most frequent action come from it.
        test: test ground truth; its actions and boxes are copied unless told otherwise.
        mode: ``prior`` (states from `PriorTable.fit(train)`) or ``video-labels`` (each test
            video's own most frequent states, `video_states`).
        boxes: a detector's prediction for `test`: humans and part boxes are taken from it (frames
            it lacks stay missing) instead of the ground truth's.
        action: ``gt`` copies each test video's action; ``most-frequent`` predicts the training
            set's most frequent action for every video (no model); ``boxes`` keeps the action of
            the `boxes` prediction (its states alone are replaced: a parser without the part-label
            transform, from a run with it).

    Raises:
        LabelError: `mode` or `action` is unknown, or `boxes` lacks a test video.
    """
    if mode not in BASELINE_MODES:
        raise LabelError(f"baseline mode {mode!r}: expected one of {', '.join(BASELINE_MODES)}")
    if action not in BASELINE_ACTIONS:
        raise LabelError(
            f"baseline action {action!r}: expected one of {', '.join(BASELINE_ACTIONS)}"
        )
    if action == "boxes" and boxes is None:
        raise LabelError("baseline action 'boxes' takes the action of a prediction: give boxes")
    prior = PriorTable.fit(train) if mode == "prior" else None
    guess = most_frequent_action(train) if action == "most-frequent" else None
    labels: dict[str, str] = {}
    parts: dict[str, Frames[PredHuman]] = {}
    for video, true_action in test.labels.items():
        if boxes is not None and video not in boxes.labels:
            raise LabelError(f"baseline boxes: the prediction lacks test video {video!r}")
        labels[video] = boxes.labels[video] if action == "boxes" else guess or true_action
        frames = test.parts.get(video, {})
        if prior is None:
            states = video_states(frames)
        else:
            states = {type_name: prior.state(labels[video], type_name) for type_name in PART_TYPES}
        if boxes is None:
            parts[video] = {key: _oracle_humans(humans, states) for key, humans in frames.items()}
        else:
            detected = boxes.parts.get(video, {})
            parts[video] = {key: _restated_humans(h, states) for key, h in detected.items()}
    return Prediction(labels=labels, parts=parts)
