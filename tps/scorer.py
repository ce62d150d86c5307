"""The Kinetics-TPS score, computed exactly as the official scorer does (DESIGN.md section 2).

For each ground-truth video the part state correctness (PSC) averages, over annotated frames, the
share of ground-truth parts whose matched predicted human has a proposal with part IoU >= 0.3 and
the right state (credit divided by the number of proposals). The score is the area under
"video accuracy among videos whose PSC >= t" for t = 1/10000 .. 9999/10000.

Every quirk is kept, because rankings hinge on them:

- IoU counts inclusive pixels (``x2 - x1 + 1``) and is -1 for boxes that do not overlap.
- Boxes are scored as given: one with ``x2 < x1`` or ``y2 < y1`` is not reordered. Its intersection
  width or height then comes out <= 0 (so the IoU is -1) unless the reversal is under one pixel,
  where the small positive width enters the area and the union as it is.
- Human IoU is float32 (boxes cast to float32, float32 arithmetic), padded to a square matrix with
  zeros (which makes it float64 when padding happens) and matched with
  `scipy.optimize.linear_sum_assignment` on ``1 - IoU``; pairs need IoU > 0.5, strictly.
- Part IoU is float64 and needs >= 0.3.
- Sums run in the official order (parts in file order, humans, frames), so results agree to the bit.
- A frame without GT humans leaves the frame count T; a frame missing from the prediction counts 0
  and stays in T; a predicted frame whose GT humans have no parts leaves T; PSC = 1 when T = 0.
- The area is the official loop over 9999 thresholds summed in float64, not the closed form
  ``min(floor(PSC * 10000), 9999) / 10000``: the two differ by rounding (the loop gives
  0.99989999999990... for a perfect video) and on thresholds (PSC = 0.57 is >= 5700/10000, but
  ``floor(0.57 * 10000)`` is 5699).

The work is vectorised per video: one float32 IoU tensor for all human pairs of the video, one
`linear_sum_assignment` per frame, and one float64 IoU tensor for every part proposal of every
matched pair.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
from scipy.optimize import linear_sum_assignment

from tps.formats import (
    MAX_HUMANS,
    MAX_PROPOSALS,
    Box,
    FormatError,
    Frames,
    GroundTruth,
    GtHuman,
    PredHuman,
    Prediction,
)
from tps.vocabulary import PARTS

log = logging.getLogger(__name__)

HUMAN_IOU = 0.5
"""A GT human and a predicted human match when their IoU is strictly greater."""

PART_IOU = 0.3
"""A part proposal localises the GT part when their IoU is at least this."""

THRESHOLD_STEPS = 10000
"""PSC thresholds are k / THRESHOLD_STEPS for k = 1 .. THRESHOLD_STEPS - 1."""

PSC_WITHOUT_FRAMES = 1.0
"""The PSC of a video none of whose frames count (the official scorer's choice)."""

NO_OVERLAP_IOU = -1.0
"""The IoU the official scorer gives boxes that do not overlap."""

_PART_INDEX = {name: index for index, name in enumerate(PARTS)}
_NUM_PARTS = len(PARTS)
_NO_VERB = -1
"""Verb code of padding proposals; real verbs have codes >= 0, so padding never matches."""


@dataclass(frozen=True)
class ScoreResult:
    """The official score and the numbers behind it.

    Attributes:
        score: area under the PSC-conditioned video accuracy curve, in [0, 0.9999].
        video_accuracy: share of videos with the right action label.
        mean_psc: mean PSC over videos.
        per_video: video -> (action label correct, PSC), in ground-truth order.
    """

    score: float
    video_accuracy: float
    mean_psc: float
    per_video: dict[str, tuple[bool, float]]

    def as_dict(self) -> dict[str, object]:
        """``{"score", "video_accuracy", "mean_psc", "per_video": {video: {"correct", "psc"}}}``."""
        return {
            "score": self.score,
            "video_accuracy": self.video_accuracy,
            "mean_psc": self.mean_psc,
            "per_video": {
                video: {"correct": correct, "psc": psc}
                for video, (correct, psc) in self.per_video.items()
            },
        }

    def to_json(self) -> str:
        """`as_dict` as a JSON string."""
        return json.dumps(self.as_dict())

    def interval(
        self, level: float = 0.95, resamples: int = 2000, seed: int = 0
    ) -> tuple[float, float]:
        """A percentile bootstrap interval of the score over videos: how far another test split
        of the same size may land. Each resample scores with the closed form (the official loop
        differs from it by float rounding only)."""
        correct = np.array([flag for flag, _ in self.per_video.values()], dtype=bool)
        psc = np.array([value for _, value in self.per_video.values()], dtype=np.float64)
        steps = np.minimum(np.floor(psc * THRESHOLD_STEPS), THRESHOLD_STEPS - 1)
        contributions = correct * steps / THRESHOLD_STEPS
        picks = np.random.default_rng(seed).integers(0, len(contributions), (resamples, len(psc)))
        scores = contributions[picks].mean(axis=1)
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(scores, (tail, 100 - tail))
        return float(low), float(high)


def inclusive_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes with inclusive pixel corners, broadcast over leading dimensions.

    Args:
        boxes_a: (..., 4) x1, y1, x2, y2; the ground-truth side of the official formula.
        boxes_b: (..., 4) the predicted side; dtype must equal `boxes_a`'s.

    Boxes are taken as given, with no reordering: a box with ``x2 < x1`` or ``y2 < y1`` gives the
    official formula's value (`NO_OVERLAP_IOU` whenever the intersection width or height is <= 0,
    which any reversal of a pixel or more causes).

    Returns:
        (...) IoU in the inputs' dtype (float32 in, float32 arithmetic out), `NO_OVERLAP_IOU`
        where the boxes do not overlap. The operation order is the official one, so float32 and
        float64 results agree with it bit for bit.
    """
    x1 = np.maximum(boxes_a[..., 0], boxes_b[..., 0])
    y1 = np.maximum(boxes_a[..., 1], boxes_b[..., 1])
    x2 = np.minimum(boxes_a[..., 2], boxes_b[..., 2])
    y2 = np.minimum(boxes_a[..., 3], boxes_b[..., 3])
    # Infinite coordinates (read as given) make inf - inf; such pairs are no-overlap or NaN.
    with np.errstate(divide="ignore", invalid="ignore"):
        inter_w = x2 - x1 + 1
        inter_h = y2 - y1 + 1
        inter = inter_w * inter_h
        area_a = (boxes_a[..., 2] - boxes_a[..., 0] + 1) * (boxes_a[..., 3] - boxes_a[..., 1] + 1)
        area_b = (boxes_b[..., 2] - boxes_b[..., 0] + 1) * (boxes_b[..., 3] - boxes_b[..., 1] + 1)
        union = area_a + area_b - inter
        iou = inter / union
    no_overlap = (inter_w <= 0) | (inter_h <= 0)
    return np.where(no_overlap, iou.dtype.type(NO_OVERLAP_IOU), iou)


def match_humans(iou: np.ndarray, threshold: float = HUMAN_IOU) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one GT/prediction matching as the official scorer does it.

    Args:
        iou: (G, P) float32 human IoU, GT rows, prediction columns.
        threshold: pairs need IoU strictly greater than this.

    Returns:
        (gt_indices, pred_indices), int arrays of the kept pairs, in GT order.
    """
    n_gt, n_pred = iou.shape
    if n_pred > n_gt:
        iou = np.concatenate((iou, np.full((n_pred - n_gt, n_pred), 0.0)), axis=0)
    elif n_gt > n_pred:
        iou = np.concatenate((iou, np.full((n_gt, n_gt - n_pred), 0.0)), axis=1)
    rows, cols = linear_sum_assignment(1 - iou)
    real = cols < n_pred
    rows, cols = rows[real], cols[real]
    kept = iou[rows, cols] > threshold
    return rows[kept], cols[kept]


def conditioned_area(correct: Sequence[bool], psc: Sequence[float]) -> float:
    """The official area: sum over k of (1/10000) * mean_v[correct_v and PSC_v >= k/10000].

    Summed left to right in float64 as the official loop does; the counts per threshold come
    from one sorted search instead of 9999 passes over the videos.
    """
    total = len(correct)
    if total != len(psc):
        raise ValueError(f"expected one PSC per video, got {total} flags and {len(psc)} PSCs")
    if total == 0:
        raise FormatError("ground truth has no videos")
    correct_psc = np.sort(np.asarray(psc, dtype=np.float64)[np.asarray(correct, dtype=bool)])
    thresholds = np.arange(1, THRESHOLD_STEPS) / THRESHOLD_STEPS
    counts = len(correct_psc) - np.searchsorted(correct_psc, thresholds, side="left")
    terms = 1.0 / THRESHOLD_STEPS * (counts / total)
    area = 0.0
    for term in terms.tolist():
        area += term
    return area


class _Codes(dict[str, int]):
    """Verb -> int code, a new code for each new verb, so comparing codes compares strings."""

    def __missing__(self, verb: str) -> int:
        code = self[verb] = len(self)
        return code

    def encode(self, verbs: list[str]) -> np.ndarray:
        """(N,) intp codes of `verbs`."""
        return np.fromiter(map(self.__getitem__, verbs), np.intp, count=len(verbs))


@dataclass
class _Flat:
    """Flat lists gathered from one video's scored frames (GT humans and a prediction), in order.

    Per scored frame: ``frame_parts`` (n, the parts of all its GT humans), ``gt_humans`` and
    ``pred_humans`` (counts). Per human: its box and its number of parts. Per part: its index in
    `PARTS`; GT parts have a verb and a box, predicted parts a number of proposals, whose verbs
    and boxes follow in ``proposal_*``.
    """

    frame_names: list[str] = field(default_factory=list)
    frame_parts: list[int] = field(default_factory=list)
    gt_humans: list[int] = field(default_factory=list)
    gt_human_boxes: list[Box] = field(default_factory=list)
    gt_parts: list[int] = field(default_factory=list)
    gt_part_names: list[int] = field(default_factory=list)
    gt_part_verbs: list[str] = field(default_factory=list)
    gt_part_boxes: list[Box] = field(default_factory=list)
    pred_humans: list[int] = field(default_factory=list)
    pred_human_boxes: list[Box] = field(default_factory=list)
    pred_parts: list[int] = field(default_factory=list)
    pred_part_names: list[int] = field(default_factory=list)
    pred_part_proposals: list[int] = field(default_factory=list)
    proposal_verbs: list[str] = field(default_factory=list)
    proposal_boxes: list[Box] = field(default_factory=list)

    def add(self, gt_humans: list[GtHuman], pred_humans: list[PredHuman], where: str) -> None:
        """Append one scored frame; `where` names it in errors.

        Raises:
            FormatError: a part name is unknown, or the prediction breaks the official limits.
        """
        if len(pred_humans) > MAX_HUMANS:
            raise FormatError(f"{where}: at most {MAX_HUMANS} humans, got {len(pred_humans)}")
        try:
            n_parts = 0
            for human in gt_humans:
                parts = human.parts
                self.gt_parts.append(len(parts))
                self.gt_part_names.extend([_PART_INDEX[name] for name in parts])
                self.gt_part_verbs.extend([part.verb for part in parts.values()])
                self.gt_part_boxes.extend([part.box for part in parts.values()])
                n_parts += len(parts)
            for slot, human in enumerate(pred_humans):
                parts = human.parts
                self.pred_parts.append(len(parts))
                self.pred_part_names.extend([_PART_INDEX[name] for name in parts])
                boxes = [part.boxes for part in parts.values()]
                counts = list(map(len, boxes))
                if counts and max(counts) > MAX_PROPOSALS:
                    name, count = max(zip(parts, counts, strict=True), key=lambda item: item[1])
                    raise FormatError(
                        f"{where} human {slot} part {name!r}: at most {MAX_PROPOSALS} "
                        f"proposals, got {count}"
                    )
                self.pred_part_proposals.extend(counts)
                self.proposal_verbs.extend(chain.from_iterable([p.verbs for p in parts.values()]))
                self.proposal_boxes.extend(chain.from_iterable(boxes))
        except KeyError as error:
            raise FormatError(
                f"{where}: unknown part {error.args[0]!r}, expected one of {', '.join(PARTS)}"
            ) from None
        self.frame_names.append(where)
        self.frame_parts.append(n_parts)
        self.gt_humans.append(len(gt_humans))
        self.gt_human_boxes.extend([human.box for human in gt_humans])
        self.pred_humans.append(len(pred_humans))
        self.pred_human_boxes.extend([human.box for human in pred_humans])


def _boxes(boxes: list[Box], dtype: type[np.floating]) -> np.ndarray:
    """(N, 4) array of `dtype` from N box tuples (values rounded as `np.asarray` would)."""
    flat = np.fromiter(chain.from_iterable(boxes), dtype, count=4 * len(boxes))
    return flat.reshape(-1, 4)


def _positions(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of `sizes` items laid end to end: (group of each item, position in its group)."""
    group = np.repeat(np.arange(sizes.size), sizes)
    starts = np.cumsum(sizes) - sizes
    return group, np.arange(group.size) - starts[group]


def video_psc(
    video: str,
    gt_frames: Frames[GtHuman],
    pred_frames: Frames[PredHuman],
    human_iou: float = HUMAN_IOU,
    part_iou: float = PART_IOU,
) -> float:
    """The part state correctness of one video, exactly as the official scorer computes it.

    Args:
        video: the video's name, for error messages.
        gt_frames: frame key -> GT humans.
        pred_frames: frame key -> predicted humans; frames the GT lacks are ignored.
        human_iou: human match threshold (strict).
        part_iou: part localisation threshold (inclusive).

    Raises:
        FormatError: a scored predicted frame breaks the official limits, or a part is unknown.
    """
    total_frames = len(gt_frames)
    flat = _Flat()
    for frame, gt_humans in gt_frames.items():
        if not gt_humans:
            total_frames -= 1
            continue
        pred_humans = pred_frames.get(frame)
        if pred_humans is None:
            continue  # counts 0, stays in T
        flat.add(gt_humans, pred_humans, f"video {video!r} frame {frame!r}")

    video_sum = 0.0
    if flat.frame_parts:
        parts = np.asarray(flat.frame_parts)
        counted = parts > 0
        total_frames -= int(parts.size - counted.sum())
        frame_psc = _frame_sums(flat, human_iou, part_iou)[counted] / parts[counted]
        if frame_psc.size:
            video_sum = float(np.cumsum(frame_psc)[-1])  # sequential, in frame order
    if total_frames == 0:
        return PSC_WITHOUT_FRAMES
    return video_sum / total_frames


def _matched_pairs(
    flat: _Flat, human_iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match humans frame by frame.

    Returns:
        (pairs_gt, pairs_pred, gt_frame, gt_slot): (M,) GT and predicted human rows of the matched
        pairs, and per GT human row its scored frame and its position in that frame.
    """
    gt_humans = np.asarray(flat.gt_humans)
    pred_humans = np.asarray(flat.pred_humans)
    gt_frame, gt_slot = _positions(gt_humans)
    pred_frame, pred_slot = _positions(pred_humans)
    n_scored = gt_humans.size
    gt_humans_xyxy = np.zeros((n_scored, int(gt_humans.max()), 4), dtype=np.float32)
    gt_humans_xyxy[gt_frame, gt_slot] = _boxes(flat.gt_human_boxes, np.float32)
    pred_humans_xyxy = np.zeros((n_scored, int(pred_humans.max()), 4), dtype=np.float32)
    pred_humans_xyxy[pred_frame, pred_slot] = _boxes(flat.pred_human_boxes, np.float32)
    # (S, Gmax, Pmax) float32
    human_ious = inclusive_iou(gt_humans_xyxy[:, :, None, :], pred_humans_xyxy[:, None, :, :])
    undefined = np.isnan(human_ious).any(axis=(1, 2))
    if undefined.any():
        where = flat.frame_names[int(np.argmax(undefined))]
        raise FormatError(
            f"{where}: a human IoU is NaN (infinite box coordinates), which the official "
            "matching cannot take"
        )
    gt_first = (np.cumsum(gt_humans) - gt_humans).tolist()
    pred_first = (np.cumsum(pred_humans) - pred_humans).tolist()
    pairs_gt: list[np.ndarray] = [np.zeros(0, dtype=np.intp)]
    pairs_pred: list[np.ndarray] = [np.zeros(0, dtype=np.intp)]
    per_frame = zip(gt_humans.tolist(), pred_humans.tolist(), strict=True)
    for scored, (n_gt, n_pred) in enumerate(per_frame):
        if n_pred:
            rows, cols = match_humans(human_ious[scored, :n_gt, :n_pred], human_iou)
            pairs_gt.append(rows + gt_first[scored])
            pairs_pred.append(cols + pred_first[scored])
    return np.concatenate(pairs_gt), np.concatenate(pairs_pred), gt_frame, gt_slot


def _frame_sums(flat: _Flat, human_iou: float, part_iou: float) -> np.ndarray:
    """(S,) float64: per scored frame, the sum of part credits, added in the official order."""
    n_scored = len(flat.frame_parts)
    if not flat.pred_human_boxes:
        return np.zeros(n_scored)
    pairs_gt, pairs_pred, gt_frame, gt_slot = _matched_pairs(flat, human_iou)
    codes = _Codes()

    # GT parts by (GT human, position in file order): (Hg, 10).
    n_gt_humans = len(flat.gt_human_boxes)
    owner, position = _positions(np.asarray(flat.gt_parts, dtype=np.intp))
    gt_names = np.zeros((n_gt_humans, _NUM_PARTS), dtype=np.intp)
    gt_names[owner, position] = flat.gt_part_names
    gt_verbs = np.full((n_gt_humans, _NUM_PARTS), _NO_VERB)
    gt_verbs[owner, position] = codes.encode(flat.gt_part_verbs)
    gt_present = np.zeros((n_gt_humans, _NUM_PARTS), dtype=bool)
    gt_present[owner, position] = True
    gt_parts_xyxy = np.zeros((n_gt_humans, _NUM_PARTS, 4))
    gt_parts_xyxy[owner, position] = _boxes(flat.gt_part_boxes, np.float64)

    # Predicted proposals by (pred human, part name, proposal): (Hp, 10, 5).
    n_pred_humans = len(flat.pred_human_boxes)
    owner, _ = _positions(np.asarray(flat.pred_parts, dtype=np.intp))
    names = np.asarray(flat.pred_part_names, dtype=np.intp)
    proposals = np.asarray(flat.pred_part_proposals, dtype=np.intp)
    pred_counts = np.zeros((n_pred_humans, _NUM_PARTS), dtype=np.intp)
    pred_counts[owner, names] = proposals
    part, position = _positions(proposals)
    pred_verbs = np.full((n_pred_humans, _NUM_PARTS, MAX_PROPOSALS), _NO_VERB)
    pred_verbs[owner[part], names[part], position] = codes.encode(flat.proposal_verbs)
    pred_parts_xyxy = np.zeros((n_pred_humans, _NUM_PARTS, MAX_PROPOSALS, 4))
    pred_parts_xyxy[owner[part], names[part], position] = _boxes(flat.proposal_boxes, np.float64)

    # Every GT part of every matched pair against its proposals.
    pair_names = gt_names[pairs_gt]  # (M, 10)
    proposals_xyxy = pred_parts_xyxy[pairs_pred[:, None], pair_names]  # (M, 10, 5, 4)
    proposal_verbs = pred_verbs[pairs_pred[:, None], pair_names]  # (M, 10, 5)
    n_proposals = pred_counts[pairs_pred[:, None], pair_names]  # (M, 10)
    ious = inclusive_iou(gt_parts_xyxy[pairs_gt][:, :, None, :], proposals_xyxy)  # (M, 10, 5)
    right_verb = proposal_verbs == gt_verbs[pairs_gt][:, :, None]  # (M, 10, 5)
    hit = ((ious >= part_iou) & right_verb).any(axis=2)  # (M, 10)
    scored_part = gt_present[pairs_gt] & (n_proposals > 0)
    credit = np.where(scored_part, hit / np.maximum(n_proposals, 1), 0.0)  # (M, 10)

    # Sums in the official order: parts of a human, then humans of a frame (cumsum is sequential).
    per_slot = np.zeros((n_scored, int(gt_slot.max()) + 1))  # (S, Gmax), 0 for unmatched humans
    if pairs_gt.size:
        per_slot[gt_frame[pairs_gt], gt_slot[pairs_gt]] = np.cumsum(credit, axis=1)[:, -1]
    return np.cumsum(per_slot, axis=1)[:, -1]


def evaluate(
    gt: GroundTruth,
    pred: Prediction,
    *,
    human_iou: float = HUMAN_IOU,
    part_iou: float = PART_IOU,
) -> ScoreResult:
    """Score `pred` against `gt` with the official Kinetics-TPS rule.

    Raises:
        FormatError: the ground truth is empty or lacks parts for a video, the prediction lacks a
            GT video, or a scored predicted frame breaks the official limits.
    """
    if not gt.labels:
        raise FormatError("ground truth has no videos")
    per_video: dict[str, tuple[bool, float]] = {}
    for video, action in gt.labels.items():
        if video not in pred.labels:
            raise FormatError(f"prediction has no video {video!r}")
        if video not in pred.parts:
            raise FormatError(f"prediction has no video {video!r} in its part results")
        if video not in gt.parts:
            raise FormatError(f"ground truth has no part results for video {video!r}")
        psc = video_psc(video, gt.parts[video], pred.parts[video], human_iou, part_iou)
        per_video[video] = (pred.labels[video] == action, psc)
    correct = [flag for flag, _ in per_video.values()]
    pscs = [psc for _, psc in per_video.values()]
    result = ScoreResult(
        score=conditioned_area(correct, pscs),
        video_accuracy=sum(correct) / len(correct),
        mean_psc=float(np.mean(pscs)),
        per_video=per_video,
    )
    log.debug(
        "scored %d videos: score %.4f, video accuracy %.4f",
        len(per_video),
        result.score,
        result.video_accuracy,
    )
    return result
