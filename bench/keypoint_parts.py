"""Part boxes from keypoints: fit their constants on a train split, measure part AP50 per mode.

    python -m bench.keypoint_parts fit --split data/train --max-videos 80
    python -m bench.keypoint_parts ap --split data/test --max-videos 60 [-c configs/demo.yaml]

``fit`` searches `parsing.keypoint_parts.PartGeometry` on a split's ground truth (keypoints.json,
every keypoint inside the frame counts as confident, and the annotated part boxes): the torso per
box side is the median ratio over the persons whose torso is visible; every other constant is the
grid value under which most ground-truth parts are found at inclusive IoU >= 0.5 (the scorer's
IoU, AP50's threshold), ties broken by the mean IoU, by a coordinate search (`fit`). Only the
first frame of each video is decoded, for its size.

``ap`` measures the part stage as the parser runs it (`parsing.frame_parser.PartDetector`, the
config's ``parser.parts`` settings) in each mode, on every annotated person of the split: the
person's box and keypoints come from the ground-truth box and the config's pose network (its box
refined around the keypoints, as the parser does), so the figures isolate the part stage from the
person detector; ``--gt-keypoints`` takes the ground-truth keypoints instead (the geometry's and
the painting's ceiling). Part AP per part at IoU 0.5 (AP50) and at the scorer's 0.3 (AP30) (VOC
all-point AP, `training.metrics.average_precision`, over the stage's top-1 box per part and its
score) is printed as one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import get_args

import numpy as np

from bench.common import emit
from parsing.boxes import refine_person_box
from parsing.frame_parser import PartDetector, Persons
from parsing.keypoint_parts import HIPS, SHOULDERS, PartGeometry, keypoint_parts
from parsing.networks import load_network
from parsing.settings import ParserSettings, PartMode
from pipeline.config import DEMO_CONFIG
from pipeline.settings import load_parser_settings
from tps.formats import GtHuman
from tps.scorer import inclusive_iou
from tps.vocabulary import PARTS, part_type
from training.data import Split
from training.detection import load_frame_samples
from training.metrics import AP50_IOU, average_precision
from training.parts import mean_ap, person_samples, pose_keypoints

GT_KEYPOINT_SCORE = 1.0
"""A ground-truth keypoint inside the frame (visible or occluded) is fully confident."""
START = PartGeometry(
    head_pad=0.30,
    hip_pad=0.20,
    arm_pad=0.15,
    leg_pad=0.15,
    hand_reach=0.30,
    hand_size=0.40,
    foot_reach=0.05,
    foot_forward=0.10,
    foot_length=0.55,
    foot_thickness=0.20,
    torso_per_box=0.35,
)
"""Where the search starts (rough guesses from the synthetic bodies' proportions); it gave
`parsing.keypoint_parts.FITTED`."""
GRID = np.round(np.arange(0.0, 1.5001, 0.05), 3)
"""Values tried for every constant, in person-scale units (reaches in segment lengths)."""
ROUNDS = 2
"""Passes of the coordinate search over the constants."""
GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("head_pad",),
    "hip": ("hip_pad",),
    "arm": ("arm_pad",),
    "leg": ("leg_pad",),
    "hand": ("hand_reach", "hand_size"),
    "foot": ("foot_reach", "foot_forward", "foot_length", "foot_thickness"),
}
"""Part type -> the constants that place its boxes (each moves only its own parts' boxes)."""


@dataclass(frozen=True)
class GtPerson:
    """One annotated person of a train split: its box, keypoints, part boxes and frame size."""

    box_xyxy: np.ndarray
    keypoints_xys: np.ndarray
    parts: dict[str, np.ndarray]
    frame_hw: tuple[int, int]


def gt_persons(split: Split, max_videos: int | None) -> list[GtPerson]:
    """Every annotated person with a part, paired with the keypoints of the same person."""
    persons = []
    for video in split.videos[:max_videos]:
        frame_hw = split.frames(video, [0]).shape[1:3]
        skeletons = split.keypoints(video)
        for index, humans in split.annotated(video).items():
            for human in humans:
                match = _matching(human, skeletons[index])
                if match is not None and human.parts:
                    parts = {
                        name: np.array(part.box, np.float32) for name, part in human.parts.items()
                    }
                    persons.append(
                        GtPerson(np.array(human.box, np.float32), match, parts, frame_hw)
                    )
    return persons


def _matching(human: GtHuman, skeletons: Sequence) -> np.ndarray | None:
    """Keypoints (score 1 inside the frame, else 0) of the skeleton whose box is the human's."""
    if not skeletons:
        return None
    boxes = np.stack([skeleton.box_xyxy for skeleton in skeletons])
    ious = inclusive_iou(np.array(human.box, np.float32)[None], boxes)
    best = int(ious.argmax())
    if ious[best] < AP50_IOU:
        return None
    keypoints = skeletons[best].keypoints_xyv.copy()
    keypoints[:, 2] = np.where(keypoints[:, 2] > 0, GT_KEYPOINT_SCORE, 0.0)
    return keypoints


def torso_per_box(persons: Sequence[GtPerson]) -> float:
    """Median torso length per longer box side over the persons whose torso is visible."""
    ratios = []
    for person in persons:
        points = person.keypoints_xys
        if points[list(SHOULDERS), 2].all() and points[list(HIPS), 2].all():
            torso = points[list(SHOULDERS), :2].mean(axis=0) - points[list(HIPS), :2].mean(axis=0)
            x1, y1, x2, y2 = person.box_xyxy
            ratios.append(float(np.hypot(*torso)) / max(x2 - x1, y2 - y1, 1.0))
    return float(np.median(ratios))


def part_ious(persons: Sequence[GtPerson], geometry: PartGeometry) -> dict[str, list[float]]:
    """Part type -> the IoU of every ground-truth part with its derived box (-1: not derived)."""
    ious: dict[str, list[float]] = {kind: [] for kind in GROUPS}
    for person in persons:
        derived = keypoint_parts(
            person.keypoints_xys,
            person.box_xyxy,
            person.frame_hw,
            min_score=GT_KEYPOINT_SCORE,
            geometry=geometry,
        )
        for name, gt_box in person.parts.items():
            box = derived.get(name)
            iou = -1.0 if box is None else float(inclusive_iou(gt_box, box[0].astype(np.float32)))
            ious[part_type(name)].append(iou)
    return ious


def _quality(ious: Sequence[float]) -> tuple[float, float]:
    """(share of parts found at IoU >= 0.5, mean IoU with misses as 0): higher is better."""
    values = np.asarray(ious)
    return float((values >= AP50_IOU).mean()), float(values.clip(0).mean())


def fit(persons: Sequence[GtPerson]) -> tuple[PartGeometry, dict[str, dict[str, float]]]:
    """The geometry found best on `persons`, and per part type its hit rate and mean IoU.

    A coordinate search from `START`: each step tries every `GRID` value for the k-th constant of
    every part type at once (they move disjoint boxes) and keeps each type's best.
    """
    geometry = replace(START, torso_per_box=torso_per_box(persons))
    best = {kind: _quality(ious) for kind, ious in part_ious(persons, geometry).items()}
    for _, position in itertools.product(range(ROUNDS), range(max(map(len, GROUPS.values())))):
        varied = {kind: names[position] for kind, names in GROUPS.items() if position < len(names)}
        chosen = {name: getattr(geometry, name) for name in varied.values()}
        for value in GRID:
            trial = replace(geometry, **{name: float(value) for name in varied.values()})
            for kind, ious in part_ious(persons, trial).items():
                quality = _quality(ious)
                if kind in varied and quality > best[kind]:
                    best[kind], chosen[varied[kind]] = quality, float(value)
        geometry = replace(geometry, **chosen)
    report = {kind: {"hit_rate": hit, "mean_iou": mean} for kind, (hit, mean) in best.items()}
    return geometry, report


def measure_modes(
    split: Split, settings: ParserSettings, max_videos: int | None, gt_keypoints: bool = False
) -> dict[str, dict[str, object]]:
    """Part AP50 per part of the part stage in every mode, on the split's annotated persons."""
    samples = load_frame_samples(split, None, max_videos)
    if not gt_keypoints:
        samples = pose_keypoints(samples, settings.pose.weights)
    persons = person_samples(samples)
    network = load_network(settings.parts)
    refiners = [load_network(refiner) for refiner in settings.parts.refiners]
    stages = {}
    for mode in get_args(PartMode):
        mode_settings = settings.parts.model_copy(update={"mode": mode})
        stages[mode] = PartDetector(
            network if mode_settings.uses_network else None, mode_settings, refiners
        )
    found: dict[str, list[dict]] = {mode: [] for mode in stages}
    ground_truths: list[dict[str, np.ndarray]] = []
    for person in persons:
        frame = samples.frames[person.frame]
        human = samples.humans[person.frame][person.human]
        keypoints = np.asarray(samples.keypoints[person.frame][person.human], np.float32)
        box = refine_person_box(
            np.array(human.box, np.float32),
            keypoints,
            frame.shape[:2],
            min_score=settings.pose.min_keypoint_score,
        )
        alone = Persons(box[None], np.ones(1, np.float32), keypoints[None])
        for mode, stage in stages.items():
            found[mode].append(stage(frame, alone)[0])
        ground_truths.append(
            {name: np.array(part.box, np.float32) for name, part in human.parts.items()}
        )
    return {mode: _ap(found[mode], ground_truths) for mode in stages}


SCORER_PART_IOU = 0.3
"""The official scorer credits a part from this IoU: AP at it tells what the score will see."""


def _ap(found: Sequence[dict], ground_truths: Sequence[dict[str, np.ndarray]]) -> dict[str, object]:
    """Mean and per-part AP at IoU 0.5 (AP50) and at the scorer's 0.3 (AP30)."""
    report: dict[str, object] = {}
    for key, iou in (("ap50", AP50_IOU), ("ap30", SCORER_PART_IOU)):
        per_part = {}
        for name in PARTS:
            detections = [
                (parts[name][0][None], np.array([parts[name][1]]))
                if name in parts
                else (np.zeros((0, 4)), np.zeros(0))
                for parts in found
            ]
            truths = [
                gt[name][None] if name in gt else np.zeros((0, 4), np.float32)
                for gt in ground_truths
            ]
            per_part[name] = average_precision(detections, truths, iou)
        report |= {key: mean_ap(per_part), f"{key}_per_part": per_part}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=("fit", "ap"))
    parser.add_argument("--split", type=Path, required=True, help="split with ground truth")
    parser.add_argument("--max-videos", type=int, help="only the first N videos")
    parser.add_argument("-c", "--config", type=Path, default=DEMO_CONFIG, help="ap: parser config")
    parser.add_argument(
        "--gt-keypoints", action="store_true", help="ap: ground-truth keypoints, not the pose net's"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    split = Split.open(args.split)
    if args.command == "fit":
        persons = gt_persons(split, args.max_videos)
        geometry, quality = fit(persons)
        report = {
            "persons": len(persons),
            "geometry": {f.name: getattr(geometry, f.name) for f in fields(geometry)},
            "quality": quality,
        }
    else:
        settings = load_parser_settings(args.config)
        report = {
            "split": str(args.split),
            "max_videos": args.max_videos,
            "keypoints": "ground truth" if args.gt_keypoints else "pose network",
            **measure_modes(split, settings, args.max_videos, args.gt_keypoints),
        }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
