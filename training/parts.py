"""The `parts` recipe: a YOLOF part detector trained on painted person crops, classes
`tps.vocabulary.PARTS`.

For every annotated person, the box is jittered (as a detector's box would be), enlarged to
contain its keypoints (`parsing.boxes.refine_person_box`), cut and optionally painted by
`parsing.inputs.part_crops` exactly as the frame parser does; targets are the ground-truth part
boxes mapped into crop pixels (`parsing.crops.frame_points_to_crop`). Keypoints are the split's
ground truth with a little Gaussian noise (``keypoints: gt``), scored 1 where they lie in the frame
and 0 outside, or a trained pose network's (``keypoints: pose``). Validation and `evaluate_parts`
report per-part AP50 on crops of the ground-truth persons (no jitter, no noise), averaged over the
parts present (`training.detection` holds what this recipe shares with the person detector's).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, FilePath, model_validator
from torch import nn

import models
from models.detection import IMAGENET_RGB, preprocess
from parsing.boxes import refine_person_box
from parsing.crops import frame_points_to_crop
from parsing.frame_parser import estimate_keypoints
from parsing.inputs import frame_tensor, part_crops, pose_crops
from parsing.networks import load_network
from parsing.settings import PartSettings, PoseSettings
from tps.formats import GtHuman
from tps.vocabulary import PARTS
from training.common import EpochBatches, TrainError, seed_everything
from training.data import Split
from training.detection import (
    MIN_BOX_SIDE,
    DetectorBatch,
    DetectorConfig,
    FrameSamples,
    batch_count,
    detect,
    load_detector,
    load_frame_samples,
    train_detector,
)
from training.metrics import average_precision

PARTS_WEIGHTS = "parts"
REFINE_MIN_SCORE: float = PoseSettings.model_fields["min_keypoint_score"].default
PAINT_MIN_SCORE: float = PartSettings.model_fields["paint_min_score"].default
"""The parser's defaults for refining boxes around keypoints and painting them."""


class PartsConfig(DetectorConfig):
    """The part detector recipe (YOLOF on painted person crops, 10 classes)."""

    input_shape: tuple[int, int, int] = Field((3, 160, 160), description="network input C, H, W")
    paint: bool = Field(True, description="paint keypoints on the crops (off: the ablation)")
    keypoints: Literal["gt", "pose"] = Field(
        "gt", description="keypoint source: the split's ground truth, or a trained pose network"
    )
    pose_weights: FilePath | None = Field(
        None, description="pose checkpoint (our format) used when keypoints is pose"
    )
    box_jitter: float = Field(
        0.05, ge=0, description="std of each person-box side's shift, as a fraction of its size"
    )
    keypoint_noise: float = Field(
        0.02, ge=0, description="std of keypoint noise, as a fraction of the person box height"
    )

    @model_validator(mode="after")
    def _pose_needs_weights(self) -> PartsConfig:
        if self.keypoints == "pose" and self.pose_weights is None:
            raise ValueError("keypoints: pose needs pose_weights (a trained pose checkpoint)")
        return self


@dataclass(frozen=True)
class PersonSample:
    """One annotated person with keypoints: where to find it in `FrameSamples`."""

    frame: int
    human: int


def person_samples(samples: FrameSamples) -> list[PersonSample]:
    """Every annotated person that has keypoints and at least one part."""
    return [
        PersonSample(frame, human)
        for frame, (humans, keypoints) in enumerate(
            zip(samples.humans, samples.keypoints, strict=True)
        )
        for human, (gt, points) in enumerate(zip(humans, keypoints, strict=True))
        if points is not None and gt.parts
    ]


def part_targets(
    human: GtHuman, crop_box: np.ndarray, input_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth part boxes mapped into crop pixels: ((P, 4) float32, (P,) int64 labels).

    Corners go through `frame_points_to_crop` (the inverse of the parser's
    `crop_points_to_frame`), are clipped to the crop, and parts left thinner than `MIN_BOX_SIDE`
    are dropped.
    """
    input_h, input_w = input_hw
    names = [name for name in PARTS if name in human.parts]
    if not names:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    corners = np.array([human.parts[name].box for name in names], np.float32).reshape(-1, 2, 2)
    boxes = frame_points_to_crop(corners, crop_box, input_hw).reshape(-1, 4)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, input_w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, input_h)
    labels = np.array([PARTS.index(name) for name in names], np.int64)
    keep = (boxes[:, 2] - boxes[:, 0] >= MIN_BOX_SIDE) & (boxes[:, 3] - boxes[:, 1] >= MIN_BOX_SIDE)
    return boxes[keep], labels[keep]


def person_crop(
    frame_rgb: np.ndarray,
    box_xyxy: np.ndarray,
    keypoints_xys: np.ndarray,
    input_hw: tuple[int, int],
    paint: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The parser's part-detector input for one person: refine the box, cut, paint.

    Returns:
        (h, w, 3) uint8 RGB crop and its (4,) crop box in frame pixels.
    """
    refined = refine_person_box(
        box_xyxy, keypoints_xys, frame_rgb.shape[:2], min_score=REFINE_MIN_SCORE
    )
    crops, crop_boxes = part_crops(
        frame_tensor(frame_rgb),
        refined[None],
        keypoints_xys[None],
        input_hw,
        paint=paint,
        min_keypoint_score=PAINT_MIN_SCORE,
    )
    return crops[0], crop_boxes[0]


def jitter_box(box_xyxy: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Shift each side of a box by Gaussian noise of std `fraction` of the box's size."""
    box = np.asarray(box_xyxy, dtype=np.float32)
    size = np.array([box[2] - box[0], box[3] - box[1]] * 2, dtype=np.float32)
    jittered = box + rng.normal(0, fraction, 4).astype(np.float32) * size
    jittered[2:] = np.maximum(jittered[2:], jittered[:2] + MIN_BOX_SIDE)
    return jittered


def pose_keypoints(samples: FrameSamples, pose_weights: str | Path) -> FrameSamples:
    """The samples with every annotated person's keypoints estimated by a trained pose network.

    The network loads and runs as the frame parser runs it (`parsing.networks.load_network`,
    `parsing.frame_parser.estimate_keypoints`, with the parser's default settings: flip test on),
    on crops of the ground-truth person boxes.
    """
    settings = PoseSettings(weights=Path(pose_weights))
    network = load_network(settings)
    keypoints: list[list[np.ndarray | None]] = []
    for frame, humans in zip(samples.frames, samples.humans, strict=True):
        boxes = np.array([human.box for human in humans], np.float32).reshape(-1, 4)
        crops, crop_boxes = pose_crops(frame_tensor(frame), boxes, network.input_hw)
        keypoints.append(
            list(
                estimate_keypoints(
                    network,
                    crops,
                    crop_boxes,
                    flip_test=settings.flip_test,
                    decoding=settings.decoding,
                )
            )
        )
    return replace(samples, keypoints=keypoints)


def part_samples(
    split: Split,
    frames_per_video: int | None,
    max_videos: int | None,
    pose_weights: str | Path | None,
) -> tuple[FrameSamples, list[PersonSample]]:
    """Annotated frames for the part detector, with ground-truth or estimated keypoints."""
    samples = load_frame_samples(split, frames_per_video, max_videos)
    if pose_weights is not None:
        samples = pose_keypoints(samples, pose_weights)
    persons = person_samples(samples)
    if not persons:
        raise TrainError(f"split {split.directory}: no annotated person with keypoints and parts")
    return samples, persons


class PartBatches(EpochBatches):
    """One epoch of part-detector batches (jittered, noisy, painted crops), fixed by the epoch."""

    def __init__(
        self,
        samples: FrameSamples,
        persons: Sequence[PersonSample],
        config: PartsConfig,
        epoch: int,
    ) -> None:
        super().__init__(len(persons), config.batch_size, config.seed, epoch)
        self.samples, self.persons, self.config = samples, persons, config

    def __len__(self) -> int:
        return batch_count(len(self.persons), self.config.batch_size)

    def __iter__(self) -> Iterator[DetectorBatch]:
        size = self.config.batch_size
        input_hw = (self.config.input_shape[1], self.config.input_shape[2])
        for start in range(0, len(self) * size, size):
            crops, boxes, labels = [], [], []
            for index in self.order[start : start + size]:
                person = self.persons[index]
                frame = self.samples.frames[person.frame]
                human = self.samples.humans[person.frame][person.human]
                keypoints = self.samples.keypoints[person.frame][person.human].copy()
                height = human.box[3] - human.box[1]
                noise = self.rng.normal(0, self.config.keypoint_noise * height, (len(keypoints), 2))
                keypoints[:, :2] += noise.astype(np.float32)
                box = jitter_box(np.array(human.box), self.config.box_jitter, self.rng)
                crop, crop_box = person_crop(frame, box, keypoints, input_hw, self.config.paint)
                part_boxes, part_labels = part_targets(human, crop_box, input_hw)
                crops.append(crop)
                boxes.append(torch.from_numpy(part_boxes))
                labels.append(torch.from_numpy(part_labels))
            inputs, _ = preprocess(crops, input_hw, IMAGENET_RGB)
            yield inputs, boxes, labels


def parts_ap50(
    model: nn.Module,
    samples: FrameSamples,
    persons: Sequence[PersonSample],
    input_hw: tuple[int, int],
    paint: bool,
) -> dict[str, float]:
    """Per-part AP50 on crops of the ground-truth persons: {part: AP (NaN if absent)}."""
    crops, targets = [], []
    for person in persons:
        human = samples.humans[person.frame][person.human]
        keypoints = samples.keypoints[person.frame][person.human]
        crop, crop_box = person_crop(
            samples.frames[person.frame], np.array(human.box), keypoints, input_hw, paint
        )
        crops.append(crop)
        targets.append(part_targets(human, crop_box, input_hw))
    found = detect(model, crops, input_hw)
    per_part = {}
    for label, name in enumerate(PARTS):
        detections = [
            (boxes[kinds == label], scores[kinds == label]) for boxes, scores, kinds in found
        ]
        ground_truths = [boxes[kinds == label] for boxes, kinds in targets]
        per_part[name] = average_precision(detections, ground_truths)
    return per_part


def mean_ap(per_part: dict[str, float]) -> float:
    """Mean over the parts that have ground truth (NaN when none has)."""
    present = [value for value in per_part.values() if not math.isnan(value)]
    return float(np.mean(present)) if present else math.nan


def train_parts(config: PartsConfig, resume: bool = False) -> dict[str, float]:
    """Train the part detector; writes `<out>/parts.safetensors` and returns the metrics."""
    seed_everything(config.seed)
    pose_weights = config.pose_weights if config.keypoints == "pose" else None
    samples, persons = part_samples(
        Split.open(config.data), config.frames_per_video, config.max_videos, pose_weights
    )
    input_hw = (config.input_shape[1], config.input_shape[2])
    validate = None
    if config.val_data is not None:
        val, val_persons = part_samples(
            Split.open(config.val_data),
            config.val_frames_per_video,
            config.val_max_videos,
            pose_weights,
        )

        def validate(model: nn.Module) -> dict[str, float]:
            return {"ap50": mean_ap(parts_ap50(model, val, val_persons, input_hw, config.paint))}

    return train_detector(
        models.build(config.arch, num_classes=len(PARTS)),
        lambda epoch: PartBatches(samples, persons, config, epoch),
        config,
        resume,
        validate,
        PARTS_WEIGHTS,
        PARTS,
    )


def evaluate_parts(
    weights: str | Path,
    split: str | Path,
    paint: bool | None = None,
    frames_per_video: int | None = None,
    max_videos: int | None = None,
    pose_weights: str | Path | None = None,
) -> dict[str, object]:
    """Part AP50 of a trained part detector on crops of a split's annotated persons.

    Args:
        paint: paint keypoints on the crops; None uses the setting the detector was trained with.
        pose_weights: estimate keypoints with this pose checkpoint; None uses ground truth.

    Returns:
        {"ap50": mean over the parts present, "per_part": {part: AP50 or NaN}}.
    """
    model, input_hw, trained = load_detector(weights)
    if paint is None:
        paint = bool(trained.get("paint", True))
    samples, persons = part_samples(Split.open(split), frames_per_video, max_videos, pose_weights)
    per_part = parts_ap50(model, samples, persons, input_hw, paint)
    return {"ap50": mean_ap(per_part), "per_part": per_part}
