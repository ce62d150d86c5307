"""The Kinetics-TPS result files the official scorer reads, as typed Python values.

A result directory holds two JSON files: a video-label file ``{video: action}`` and a part file
``{video: {frame_key: {"humans": [human, ...]}}}``. Ground truth (``gt_*``) gives each part one box
and one state (``"verb"``); a prediction (``pred_*``) gives each part lists of proposal boxes and
states, at most `MAX_PROPOSALS` per part and `MAX_HUMANS` humans per frame, without scores.

Boxes are ``(x1, y1, x2, y2)`` in pixels of the frame, with inclusive corners (the scorer counts
``x2 - x1 + 1`` pixels). A box read with ``x2 < x1`` or ``y2 < y1`` is kept as given, because the
official scorer scores it so; one warning per file counts them. Reading validates everything the
scorer relies on and raises `FormatError` with one line naming the file, video, frame, human
(0-based position in the list), part and field.
Keys the scorer ignores (``"number"``, ``"name"``, ...) are accepted and dropped. Frame keys are
taken as given (normally ``img_00001.json``, see `tps.vocabulary.frame_key`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tps.vocabulary import PARTS

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
"""x1, y1, x2, y2 in pixels, frame coordinates, inclusive corners."""

MAX_HUMANS = 10
"""The official limit of predicted humans per frame."""

MAX_PROPOSALS = 5
"""The official limit of (box, state) proposals per predicted part."""

GT_VIDEO_FILE = "gt_vid_result.json"
GT_PART_FILE = "gt_part_result.json"
PRED_VIDEO_FILE = "pred_vid_result.json"
PRED_PART_FILE = "pred_part_result.json"

_SHOWN_CHARS = 60
"""How much of an offending value an error message repeats."""

_PART_SET = frozenset(PARTS)


class FormatError(Exception):
    """A result file or in-memory result does not have the shape the official scorer expects."""


@dataclass(frozen=True, slots=True)
class GtPart:
    """One annotated body part: its box and its state (e.g. ``"bend"``)."""

    box: Box
    verb: str


@dataclass(frozen=True, slots=True)
class GtHuman:
    """One annotated person: box and parts by name (`tps.vocabulary.PARTS`), in file order."""

    box: Box
    parts: dict[str, GtPart]


@dataclass(frozen=True, slots=True)
class PredPart:
    """The proposals for one predicted part: ``boxes[i]`` has state ``verbs[i]``.

    ``scores`` is either empty or one confidence per proposal; it is never written to disk and only
    decides which proposals `write_pred` keeps when there are more than `MAX_PROPOSALS`.
    """

    boxes: tuple[Box, ...]
    verbs: tuple[str, ...]
    scores: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.verbs) != len(self.boxes):
            raise FormatError(
                f"PredPart: expected one verb per box, got {len(self.boxes)} boxes and "
                f"{len(self.verbs)} verbs"
            )
        if self.scores and len(self.scores) != len(self.boxes):
            raise FormatError(
                f"PredPart: expected no scores or one per box, got {len(self.boxes)} boxes and "
                f"{len(self.scores)} scores"
            )


@dataclass(frozen=True, slots=True)
class PredHuman:
    """One predicted person: box, parts by name, and a confidence used only to cap humans."""

    box: Box
    parts: dict[str, PredPart]
    score: float = 1.0


HumanT = TypeVar("HumanT", GtHuman, PredHuman)

Frames = dict[str, list[HumanT]]
"""Frame key (``img_00001.json``) -> humans: ``Frames[GtHuman]`` or ``Frames[PredHuman]``."""


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth: ``labels[video]`` is the action, ``parts[video]`` the annotated frames."""

    labels: dict[str, str]
    parts: dict[str, Frames[GtHuman]] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """A submission: ``labels[video]`` is the predicted action, ``parts[video]`` the frames."""

    labels: dict[str, str]
    parts: dict[str, Frames[PredHuman]] = field(default_factory=dict)


class _Invalid(Exception):
    """A field problem; the reader adds file, video, frame, human and part to the message."""


@dataclass
class _Where:
    """Where the reader is, for error messages."""

    video: str | None = None
    frame: str | None = None
    human: int | None = None
    part: str | None = None

    def __str__(self) -> str:
        words = []
        if self.video is not None:
            words.append(f"video {self.video!r}")
        if self.frame is not None:
            words.append(f"frame {self.frame!r}")
        if self.human is not None:
            words.append(f"human {self.human}")
        if self.part is not None:
            words.append(f"part {self.part!r}")
        return " ".join(words)


def _located(where: _Where) -> str:
    """``"video 'v' frame 'f': "`` or nothing when the problem is the whole file."""
    text = str(where)
    return f"{text}: " if text else ""


def _show(value: object) -> str:
    """A short JSON rendering of an offending value."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _object(value: object, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Invalid(f"{what} must be an object, got {_kind(value)} {_show(value)}")
    return value


def _array(value: object, what: str) -> list[Any]:
    if type(value) is not list:
        raise _Invalid(f"{what} must be an array, got {_kind(value)} {_show(value)}")
    return value


def _field(content: dict[str, Any], key: str) -> Any:
    try:
        return content[key]
    except KeyError:
        raise _Invalid(f"missing field {key!r}") from None


def _box(value: object, what: str = "box") -> Box:
    """Validate ``[x1, y1, x2, y2]``: four numbers, none NaN, taken as given.

    The official scorer reads boxes without checking their order, so ``x2 < x1`` or ``y2 < y1``
    is accepted and scored as it is (`tps.scorer.inclusive_iou`); `_read_parts` counts such boxes.
    Infinities pass too (the official reader accepts them); NaN and non-numbers do not.
    """
    if type(value) is list and len(value) == 4 and all(type(v) in (int, float) for v in value):
        x1, y1, x2, y2 = (float(v) for v in value)
        if not any(math.isnan(v) for v in (x1, y1, x2, y2)):
            return (x1, y1, x2, y2)
    raise _Invalid(f"{what} must be 4 numbers [x1, y1, x2, y2], none NaN, got {_show(value)}")


def reversed_box(box: Box) -> bool:
    """Whether `box` has ``x2 < x1`` or ``y2 < y1`` (scored as given, not reordered)."""
    return box[2] < box[0] or box[3] < box[1]


def _verb(value: object, what: str = "verb") -> str:
    if type(value) is not str or not value:
        raise _Invalid(f"{what} must be a non-empty string, got {_show(value)}")
    return value


def _gt_part(content: dict[str, Any]) -> GtPart:
    return GtPart(box=_box(_field(content, "box")), verb=_verb(_field(content, "verb")))


def _pred_part(content: dict[str, Any]) -> PredPart:
    boxes = _array(_field(content, "box"), "box (a list of boxes)")
    verbs = _array(_field(content, "verb"), "verb (a list of states)")
    if len(boxes) != len(verbs):
        raise _Invalid(f"expected one verb per box, got {len(boxes)} boxes and {len(verbs)} verbs")
    if len(boxes) > MAX_PROPOSALS:
        raise _Invalid(f"at most {MAX_PROPOSALS} proposals per part, got {len(boxes)}")
    return PredPart(
        boxes=tuple(_box(box, f"box {i}") for i, box in enumerate(boxes)),
        verbs=tuple(_verb(verb, f"verb {i}") for i, verb in enumerate(verbs)),
    )


def _load(path: Path) -> object:
    """Parse one JSON file; missing files and malformed JSON become one-line `FormatError`s."""
    if not path.parent.is_dir():
        raise FormatError(f"{path.parent}: no such directory")
    try:
        with path.open("rb") as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except OSError as error:
        raise FormatError(f"{path}: cannot read ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise FormatError(
            f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except UnicodeDecodeError as error:
        raise FormatError(f"{path}: not UTF-8 text ({error.reason})") from None


def _read_labels(path: Path) -> dict[str, str]:
    data = _load(path)
    where = _Where()
    try:
        labels = _object(data, "the file (video -> action)")
        for video, label in labels.items():
            where.video = video
            if type(label) is not str or not label:
                raise _Invalid(f"action must be a non-empty string, got {_show(label)}")
    except _Invalid as error:
        raise FormatError(f"{path}: {_located(where)}{error}") from None
    return labels


def _read_parts(path: Path, predicted: bool) -> dict[str, dict[str, list[Any]]]:
    """Read a part file; `predicted` selects the prediction shape and limits."""
    data = _load(path)
    parse_part = _pred_part if predicted else _gt_part
    where = _Where()
    result: dict[str, dict[str, list[Any]]] = {}
    reversed_boxes = 0
    try:
        for video, frames in _object(data, "the file (video -> frames)").items():
            where.video = video
            result[video] = video_frames = {}
            for frame, content in _object(frames, "video (frame -> humans)").items():
                where.frame = frame
                humans = _array(_field(_object(content, "frame"), "humans"), "humans")
                if predicted and len(humans) > MAX_HUMANS:
                    raise _Invalid(f"at most {MAX_HUMANS} humans per frame, got {len(humans)}")
                video_frames[frame] = parsed_humans = []
                for index, human in enumerate(humans):
                    where.human = index
                    human = _object(human, "human")
                    box = _box(_field(human, "box"))
                    parts = {}
                    for name, part in _object(_field(human, "parts"), "parts").items():
                        where.part = name
                        if name not in _PART_SET:
                            raise _Invalid(f"unknown part, expected one of {', '.join(PARTS)}")
                        parts[name] = parse_part(_object(part, "part"))
                    where.part = None
                    reversed_boxes += reversed_box(box) + sum(
                        map(reversed_box, _part_boxes(parts.values()))
                    )
                    parsed_humans.append(
                        PredHuman(box=box, parts=parts) if predicted else GtHuman(box, parts)
                    )
                where.human = None
            where.frame = None
    except _Invalid as error:
        raise FormatError(f"{path}: {_located(where)}{error}") from None
    if reversed_boxes:
        log.warning("%s: %d boxes with x2 < x1 or y2 < y1, scored as given", path, reversed_boxes)
    return result


def _part_boxes(parts: Iterable[GtPart | PredPart]) -> Iterator[Box]:
    """Every box of `parts`: the GT part's one box, or each proposal box."""
    for part in parts:
        if isinstance(part, GtPart):
            yield part.box
        else:
            yield from part.boxes


def _directory(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: no such directory")
    return directory


def read_gt(directory: str | Path) -> GroundTruth:
    """Read `GT_VIDEO_FILE` and `GT_PART_FILE` from `directory`.

    Raises:
        FormatError: a file is missing or malformed, or the two files list different videos.
    """
    directory = _directory(directory)
    labels = _read_labels(directory / GT_VIDEO_FILE)
    parts = _read_parts(directory / GT_PART_FILE, predicted=False)
    for names, other, file in ((labels, parts, GT_PART_FILE), (parts, labels, GT_VIDEO_FILE)):
        missing = [video for video in names if video not in other]
        if missing:
            raise FormatError(
                f"{directory}: video {missing[0]!r} is missing from {file} "
                f"({len(missing)} videos missing; both files must list the same videos)"
            )
    return GroundTruth(labels=labels, parts=parts)


def read_pred(directory: str | Path) -> Prediction:
    """Read `PRED_VIDEO_FILE` and `PRED_PART_FILE` from `directory`.

    Videos the ground truth lacks are allowed (the scorer ignores them); a video the ground truth
    has but the prediction lacks is reported by the scorer.

    Raises:
        FormatError: a file is missing or malformed, or breaks the official limits.
    """
    directory = _directory(directory)
    labels = _read_labels(directory / PRED_VIDEO_FILE)
    parts = _read_parts(directory / PRED_PART_FILE, predicted=True)
    return Prediction(labels=labels, parts=parts)


def _top(count: int, scores: tuple[float, ...] | list[float]) -> list[int]:
    """Indices of the `count` highest scores in their original order; ties keep earlier items."""
    ranked = sorted(range(len(scores)), key=lambda index: -scores[index])[:count]
    return sorted(ranked)


def _gt_human_json(human: GtHuman) -> dict[str, Any]:
    return {
        "box": list(human.box),
        "parts": {
            name: {"box": list(part.box), "verb": part.verb} for name, part in human.parts.items()
        },
    }


def _pred_part_json(part: PredPart) -> dict[str, Any]:
    keep = range(len(part.boxes))
    if len(part.boxes) > MAX_PROPOSALS:
        keep = _top(MAX_PROPOSALS, part.scores) if part.scores else range(MAX_PROPOSALS)
    return {"box": [list(part.boxes[i]) for i in keep], "verb": [part.verbs[i] for i in keep]}


def _pred_human_json(human: PredHuman) -> dict[str, Any]:
    return {
        "box": list(human.box),
        "parts": {name: _pred_part_json(part) for name, part in human.parts.items()},
    }


def _capped_humans(humans: list[PredHuman]) -> list[PredHuman]:
    if len(humans) <= MAX_HUMANS:
        return humans
    return [humans[i] for i in _top(MAX_HUMANS, [human.score for human in humans])]


def _write(path: Path, data: object) -> None:
    """Write strict JSON (no NaN or infinity, which the scorer's reader would choke on)."""
    try:
        text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    except ValueError as error:
        raise FormatError(f"{path}: cannot write non-finite numbers ({error})") from None
    try:
        path.write_text(text)
    except OSError as error:
        raise FormatError(f"{path}: cannot write ({error.strerror})") from error


def _make_directory(directory: str | Path) -> Path:
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FormatError(f"{directory}: cannot create directory ({error.strerror})") from error
    return directory


def write_gt(directory: str | Path, gt: GroundTruth) -> None:
    """Write `gt` as `GT_VIDEO_FILE` and `GT_PART_FILE` into `directory` (created if needed)."""
    directory = _make_directory(directory)
    parts = {
        video: {
            frame: {"humans": [_gt_human_json(human) for human in humans]}
            for frame, humans in frames.items()
        }
        for video, frames in gt.parts.items()
    }
    _write(directory / GT_VIDEO_FILE, gt.labels)
    _write(directory / GT_PART_FILE, parts)


def write_pred(directory: str | Path, pred: Prediction) -> None:
    """Write `pred` as `PRED_VIDEO_FILE` and `PRED_PART_FILE` into `directory`.

    The official limits are enforced rather than failed on: a frame keeps its `MAX_HUMANS`
    highest-``score`` humans, a part its `MAX_PROPOSALS` highest-``scores`` proposals (the first
    ones if it has no scores); what is kept stays in its original order. Scores are not written.
    """
    directory = _make_directory(directory)
    dropped_humans = dropped_proposals = 0
    parts: dict[str, dict[str, Any]] = {}
    for video, frames in pred.parts.items():
        parts[video] = video_json = {}
        for frame, humans in frames.items():
            kept = _capped_humans(humans)
            dropped_humans += len(humans) - len(kept)
            dropped_proposals += sum(
                max(0, len(part.boxes) - MAX_PROPOSALS)
                for human in kept
                for part in human.parts.values()
            )
            video_json[frame] = {"humans": [_pred_human_json(human) for human in kept]}
    if dropped_humans or dropped_proposals:
        log.info(
            "official limits: dropped %d humans and %d part proposals",
            dropped_humans,
            dropped_proposals,
        )
    _write(directory / PRED_VIDEO_FILE, pred.labels)
    _write(directory / PRED_PART_FILE, parts)
