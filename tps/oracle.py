"""What each component of a prediction costs in the Kinetics-TPS score: swap it for the truth.

`swap` replaces one component of a prediction with the ground truth's and leaves the rest as
predicted; scoring the result (`tps.scorer.evaluate`) next to the unswapped prediction says how
much score that component loses. Humans are paired with the scorer's own float32 IoU and Hungarian
matching (`tps.scorer.inclusive_iou`, `tps.scorer.match_humans`), so an oracle pairs people
exactly as the scorer would.

Components (`ORACLE_COMPONENTS`):

- ``action``: each video's label becomes the GT label.
- ``humans``: in each frame, predicted humans matched one-to-one to GT humans with any overlap
  (IoU > 0, not the scorer's > 0.5) take the GT human's box, their parts unchanged. Unmatched
  predicted humans and missed GT humans stay as they are, so this shows what loose boxes cost
  given that the person was detected at all.
- ``parts``: for each pair the scorer matches (IoU > 0.5), each predicted part the GT human also
  has becomes one proposal: the GT box with the part's first predicted state. A GT part the
  prediction lacks stays absent (there is no predicted state to give it); predicted parts the GT
  human lacks are kept. Collapsing to one proposal also removes the split credit of several
  proposals, so a right state that was not the first one is lost.
- ``states``: for each pair the scorer matches, each proposal that localises its GT part (part
  IoU >= 0.3, the scorer's rule) takes the GT state; other proposals keep theirs.

Videos and frames the prediction lacks stay lacking, so missing output keeps costing what it
costs. The input prediction is never mutated; the result shares with it whatever the swap leaves
unchanged (humans and parts are frozen), so treat both as read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Literal

import numpy as np

from tps.formats import FormatError, GroundTruth, GtHuman, PredHuman, Prediction, PredPart
from tps.scorer import HUMAN_IOU, PART_IOU, inclusive_iou, match_humans

OracleComponent = Literal["action", "humans", "parts", "states"]
ORACLE_COMPONENTS: tuple[OracleComponent, ...] = ("action", "humans", "parts", "states")

ALL_SWAPS: tuple[OracleComponent, ...] = ("humans", "parts", "states", "action")
"""The order `swap_all` applies every component in: human boxes first, so that the part and state
swaps reach every detected person, and part boxes before states, so that every state swap finds
a localised proposal."""

ANY_OVERLAP_IOU = 0.0
"""The human swap pairs people whose IoU is strictly greater than this (any overlap)."""

_PairSwap = Callable[[GtHuman, PredHuman], PredHuman]
"""Turns one matched predicted human into its swapped copy, given its GT human."""


def swap(prediction: Prediction, gt: GroundTruth, component: OracleComponent) -> Prediction:
    """`prediction` with one component replaced by the ground truth's (module docstring).

    Raises:
        ValueError: `component` is not one of `ORACLE_COMPONENTS`.
        FormatError: a human IoU is NaN (infinite box coordinates), as in the scorer.
    """
    if component == "action":
        labels = {video: gt.labels.get(video, label) for video, label in prediction.labels.items()}
        return Prediction(labels=labels, parts=prediction.parts)
    if component == "humans":
        return _swap_pairs(prediction, gt, ANY_OVERLAP_IOU, _gt_human_box)
    if component == "parts":
        return _swap_pairs(prediction, gt, HUMAN_IOU, _gt_part_boxes)
    if component == "states":
        return _swap_pairs(prediction, gt, HUMAN_IOU, _gt_states)
    raise ValueError(
        f"oracle component {component!r}: expected one of {', '.join(ORACLE_COMPONENTS)}"
    )


def swap_all(
    prediction: Prediction, gt: GroundTruth, components: Iterable[OracleComponent] = ALL_SWAPS
) -> Prediction:
    """`prediction` with each of `components` swapped in turn (none: `prediction` itself)."""
    for component in components:
        prediction = swap(prediction, gt, component)
    return prediction


def _swap_pairs(
    prediction: Prediction, gt: GroundTruth, human_iou: float, change: _PairSwap
) -> Prediction:
    """Apply `change` to every predicted human matched to a GT human at IoU > `human_iou`."""
    parts = {}
    for video, pred_frames in prediction.parts.items():
        gt_frames = gt.parts.get(video, {})
        parts[video] = frames = {}
        for frame, pred_humans in pred_frames.items():
            gt_humans = gt_frames.get(frame, [])
            frames[frame] = humans = list(pred_humans)
            for g, p in _matches(gt_humans, humans, human_iou, f"video {video!r} frame {frame!r}"):
                humans[p] = change(gt_humans[g], humans[p])
    return Prediction(labels=prediction.labels, parts=parts)


def _matches(
    gt_humans: list[GtHuman], pred_humans: list[PredHuman], human_iou: float, where: str
) -> list[tuple[int, int]]:
    """(GT index, predicted index) of one frame's humans, matched as the official scorer does."""
    if not gt_humans or not pred_humans:
        return []
    gt_humans_xyxy = np.asarray([human.box for human in gt_humans], dtype=np.float32)  # (G, 4)
    pred_humans_xyxy = np.asarray([human.box for human in pred_humans], dtype=np.float32)  # (P, 4)
    ious = inclusive_iou(gt_humans_xyxy[:, None, :], pred_humans_xyxy[None, :, :])  # (G, P)
    if np.isnan(ious).any():
        raise FormatError(
            f"{where}: a human IoU is NaN (infinite box coordinates), which the official "
            "matching cannot take"
        )
    rows, cols = match_humans(ious, human_iou)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def _gt_human_box(gt_human: GtHuman, pred_human: PredHuman) -> PredHuman:
    """The GT human's box, the predicted parts."""
    return replace(pred_human, box=gt_human.box)


def _gt_part_boxes(gt_human: GtHuman, pred_human: PredHuman) -> PredHuman:
    """Each predicted part the GT human has: one proposal, the GT box and the first state."""
    parts = dict(pred_human.parts)
    for name, gt_part in gt_human.parts.items():
        part = parts.get(name)
        if part is not None and part.boxes:
            parts[name] = PredPart((gt_part.box,), part.verbs[:1], part.scores[:1])
    return replace(pred_human, parts=parts)


def _gt_states(gt_human: GtHuman, pred_human: PredHuman) -> PredHuman:
    """Proposals that localise their GT part take its state; the rest keep theirs."""
    predicted = pred_human.parts
    shared = [name for name in gt_human.parts if name in predicted and predicted[name].boxes]
    if not shared:
        return pred_human
    # Every proposal of every shared part against its GT part box, in one call: (N, 4) -> (N,).
    gt_parts_xyxy = np.asarray(
        [gt_human.parts[name].box for name in shared for _ in predicted[name].boxes],
        dtype=np.float64,
    )
    proposals_xyxy = np.asarray(
        [box for name in shared for box in predicted[name].boxes], dtype=np.float64
    )
    localised = iter((inclusive_iou(gt_parts_xyxy, proposals_xyxy) >= PART_IOU).tolist())
    parts = dict(pred_human.parts)
    for name in shared:
        part, gt_verb = parts[name], gt_human.parts[name].verb
        verbs = tuple(gt_verb if next(localised) else verb for verb in part.verbs)
        parts[name] = replace(part, verbs=verbs)
    return replace(pred_human, parts=parts)
