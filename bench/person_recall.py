"""Person recall: how many ground-truth humans a predicted human box matches as the scorer sees it.

    python -m bench.person_recall pred --gt data/val --pred out/x [--pred out/y ...]
    python -m bench.person_recall parse --split data/val [--max-videos 40] [-c configs/demo.yaml]
        [--set parser.person.score_threshold=0.2 ...]

A ground-truth human counts as found when the official matching (`tps.scorer.match_humans`:
Hungarian on float32 inclusive-pixel IoU, pairs kept at IoU > 0.5 strictly) pairs it with a
predicted human. A human the scorer does not find scores none of its parts, whatever the part
stage and the clip heads do, so recall bounds the part-state score.

``pred`` reads prediction folders (``run.py predict``'s ``pred_part_result.json``), scoring the
videos the prediction has (a ``--limit`` run covers the first videos). ``parse`` runs the config's
person and pose stages (`parsing.frame_parser`) on the split's annotated frames, without the part
stage, the clip heads or GStreamer, and reports the detector's boxes ("before": before refinement)
and the pose stage's boxes ("after": refined around the keypoints when
``parser.pose.refine_person_boxes`` is on) from one pass.

Each report gives recall, the mean IoU of matched pairs, the missed GT humans by their best IoU
with any predicted box (none overlapping, up to 0.3, up to 0.5: detection or localisation), the
unmatched predicted humans, and the median signed offset of each box side from the GT's side over
the best-overlapping pairs, in GT widths (x) and heights (y): positive x2 / y2 and negative x1 /
y1 mean boxes larger than the GT's.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import emit
from parsing.frame_parser import person_detector, pose_estimator
from parsing.networks import load_network
from parsing.settings import ParserSettings
from pipeline.config import DEMO_CONFIG
from pipeline.settings import load_parser_settings
from tps.formats import FormatError, GroundTruth, Prediction, read_gt, read_pred
from tps.scorer import HUMAN_IOU, inclusive_iou, match_humans
from training.data import Split

MISS_BINS = (0.0, 0.3, HUMAN_IOU)
"""Upper edges of the missed humans' best-IoU bins: no overlap, <= 0.3, <= 0.5."""
MISS_NAMES = ("no_overlap", "iou_to_0.3", "iou_to_0.5")
SIDES = ("x1", "y1", "x2", "y2")

FrameBoxes = tuple[np.ndarray, np.ndarray]
"""One scored frame: (G, 4) GT human boxes and (P, 4) predicted human boxes, xyxy inclusive."""


@dataclass
class PersonRecall:
    """Counts over scored frames (frames with GT humans); see the module docstring."""

    frames: int = 0
    gt_humans: int = 0
    matched: int = 0
    predicted: int = 0
    matched_iou_sum: float = 0.0
    missed_by_best_iou: list[int] = field(default_factory=lambda: [0] * len(MISS_BINS))
    side_offsets: list[np.ndarray] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Share of GT humans the official matching pairs with a predicted human."""
        return self.matched / self.gt_humans if self.gt_humans else 0.0

    def add(self, gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> None:
        """Count one scored frame: (G, 4) GT and (P, 4) predicted boxes, G >= 1."""
        gt = np.asarray(gt_xyxy, np.float32).reshape(-1, 4)
        pred = np.asarray(pred_xyxy, np.float32).reshape(-1, 4)
        self.frames += 1
        self.gt_humans += len(gt)
        self.predicted += len(pred)
        if not len(pred):
            self.missed_by_best_iou[0] += len(gt)
            return
        ious = inclusive_iou(gt[:, None, :], pred[None, :, :])  # G,P float32
        rows, cols = match_humans(ious)
        self.matched += len(rows)
        self.matched_iou_sum += float(ious[rows, cols].astype(np.float64).sum())
        missed = np.setdiff1d(np.arange(len(gt)), rows)
        best = ious[missed].max(axis=1)
        for index, edge in enumerate(MISS_BINS):
            low = MISS_BINS[index - 1] if index else -np.inf
            self.missed_by_best_iou[index] += int(((best > low) & (best <= edge)).sum())
        nearest = pred[ious.argmax(axis=1)]  # G,4
        overlapping = ious.max(axis=1) > 0
        size = np.stack([gt[:, 2] - gt[:, 0] + 1, gt[:, 3] - gt[:, 1] + 1] * 2, axis=1)  # G,4
        self.side_offsets.append(((nearest - gt) / size)[overlapping])

    def as_dict(self) -> dict[str, object]:
        """Recall, mean matched IoU, misses by best IoU, extra predictions, median side offsets."""
        offsets = np.concatenate(self.side_offsets) if self.side_offsets else np.zeros((0, 4))
        return {
            "frames": self.frames,
            "gt_humans": self.gt_humans,
            "predicted_humans": self.predicted,
            "recall": round(self.recall, 4),
            "mean_matched_iou": round(self.matched_iou_sum / max(self.matched, 1), 4),
            "missed": self.gt_humans - self.matched,
            "missed_by_best_iou": dict(zip(MISS_NAMES, self.missed_by_best_iou, strict=True)),
            "extra_predictions": self.predicted - self.matched,
            "median_side_offset": {
                side: round(float(np.median(offsets[:, index])), 4) if len(offsets) else None
                for index, side in enumerate(SIDES)
            },
        }


def person_recall(frames: Iterable[FrameBoxes]) -> PersonRecall:
    """`PersonRecall` over scored frames of (GT boxes, predicted boxes)."""
    result = PersonRecall()
    for gt_xyxy, pred_xyxy in frames:
        result.add(gt_xyxy, pred_xyxy)
    return result


def prediction_frames(gt: GroundTruth, pred: Prediction) -> Iterator[FrameBoxes]:
    """The scored frames of the GT videos the prediction has; a frame it lacks has no boxes.

    Raises:
        FormatError: the prediction has none of the GT's videos.
    """
    videos = [video for video in gt.parts if video in pred.parts]
    if not videos:
        raise FormatError("the prediction has none of the ground truth's videos")
    for video in videos:
        predicted = pred.parts[video]
        for frame, humans in gt.parts[video].items():
            if humans:
                boxes = [human.box for human in predicted.get(frame, [])]
                yield np.array([human.box for human in humans]), np.array(boxes).reshape(-1, 4)


def parse_split(
    split: Split, settings: ParserSettings, max_videos: int | None
) -> tuple[PersonRecall, PersonRecall]:
    """(before, after) refinement: recall of the person stage's and the pose stage's boxes on
    the split's annotated frames, the stages built from `settings` as the parser builds them."""
    detector = person_detector(load_network(settings.person), settings.person)
    estimator = pose_estimator(load_network(settings.pose), settings.pose)
    before, after = PersonRecall(), PersonRecall()
    for video in split.videos[:max_videos]:
        annotated = {index: humans for index, humans in split.annotated(video).items() if humans}
        if not annotated:
            continue
        frames = list(split.frames(video, sorted(annotated)))
        detections = detector(frames)
        persons = estimator(frames, detections)
        for humans, found, posed in zip(annotated.values(), detections, persons, strict=True):
            gt_xyxy = np.array([human.box for human in humans])
            before.add(gt_xyxy, found.boxes_xyxy.numpy())
            after.add(gt_xyxy, posed.boxes_xyxy)
    return before, after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=("pred", "parse"))
    parser.add_argument("--gt", type=Path, help="pred: the ground-truth split")
    parser.add_argument(
        "--pred", type=Path, action="append", default=[], help="pred: a prediction folder"
    )
    parser.add_argument("--split", type=Path, help="parse: the split whose frames are parsed")
    parser.add_argument("--max-videos", type=int, help="parse: only the first N videos")
    parser.add_argument("-c", "--config", type=Path, default=DEMO_CONFIG, help="parse: config")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="parse: override a key"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.command == "pred":
        if args.gt is None or not args.pred:
            parser.error("pred needs --gt and at least one --pred")
        gt = read_gt(args.gt)
        report: dict[str, object] = {
            str(folder): person_recall(prediction_frames(gt, read_pred(folder))).as_dict()
            for folder in args.pred
        }
    else:
        if args.split is None:
            parser.error("parse needs --split")
        settings = load_parser_settings(args.config, args.set)
        before, after = parse_split(Split.open(args.split), settings, args.max_videos)
        report = {
            "split": str(args.split),
            "max_videos": args.max_videos,
            "set": args.set,
            "before_refinement": before.as_dict(),
            "after_refinement": after.as_dict(),
        }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
