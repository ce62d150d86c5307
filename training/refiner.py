"""The `refiner` recipe: the part refiner (`models.part_refiner`) on patches around noisy guesses.

For every annotated hand and foot, the first guess is its ground-truth centre plus Gaussian noise
(``guess_noise`` x the person's height per axis, about the part detector's error on hands), the
patch side ``patch_scale`` x the person's height (its box refined around its keypoints, as the
parser's) with a random factor, cut as the parser cuts it (`parsing.part_refining`). The loss is L1
on the part's outer edges in patch sides, on its type's output. Half the patches are mirrored.

Validation reports, on the validation split's hands and feet with guesses drawn the same way (a
fixed generator), the share of refined boxes at inclusive IoU >= 0.5 and their mean IoU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

import models
from parsing.boxes import refine_person_box
from parsing.inputs import frame_tensor
from parsing.part_refining import (
    PATCH_SCALE_KEY,
    box_centres,
    boxes_in_patches,
    cut_patches,
    patch_boxes,
    patch_edges,
    patches_to_boxes,
)
from tps.scorer import inclusive_iou
from tps.vocabulary import part_type
from training.common import (
    Checkpointer,
    EpochBatches,
    TrainConfigBase,
    TrainError,
    fit,
    seed_everything,
)
from training.data import Split
from training.detection import FrameSamples, load_frame_samples
from training.metrics import AP50_IOU

WEIGHTS_NAME = "refiner"
VALIDATION_SEED = 12345
"""The validation guesses' generator seed: every validation sees the same guesses."""


class RefinerConfig(TrainConfigBase):
    """The part refiner recipe."""

    arch: str = Field("part_refiner_tiny", description="a registered refiner architecture")
    input_size: int = Field(64, ge=16, description="patch side S in network pixels")
    types: tuple[str, ...] = Field(("hand", "foot"), min_length=1, description="part types")
    patch_scale: float = Field(0.4, gt=0, description="patch side, in person box heights")
    guess_noise: float = Field(
        0.035, ge=0, description="std of the guess's shift per axis, in person box heights"
    )
    scale_jitter: float = Field(0.1, ge=0, description="std of the patch side's log factor")
    flip_prob: float = Field(0.5, ge=0, le=1, description="share of mirrored patches")
    frames_per_video: int | None = Field(8, ge=1, description="annotated frames per video")
    max_videos: int | None = Field(None, ge=1, description="only the first N training videos")
    val_frames_per_video: int | None = Field(2, ge=1, description="validation frames per video")
    val_max_videos: int | None = Field(50, ge=1, description="only the first N val videos")


@dataclass(frozen=True)
class PartSamples:
    """Every annotated part of the recipe's types, with what its patch needs.

    Attributes:
        frames: the decoded frames (N, H, W, 3) uint8 RGB.
        frame_of: (P,) index into `frames` of each part.
        boxes: (P, 4) float32 inclusive ground-truth part boxes.
        heights: (P,) float32 height of the person's box, refined around its keypoints.
        kinds: (P,) int64 index of the part's type in the recipe's types.
    """

    frames: np.ndarray
    frame_of: np.ndarray
    boxes: np.ndarray
    heights: np.ndarray
    kinds: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_of)


def part_samples(samples: FrameSamples, types: tuple[str, ...]) -> PartSamples:
    """The parts of `types` of every annotated person in `samples`."""
    frame_of, boxes, heights, kinds = [], [], [], []
    for index, (frame, humans, keypoints) in enumerate(
        zip(samples.frames, samples.humans, samples.keypoints, strict=True)
    ):
        for human, points in zip(humans, keypoints, strict=True):
            box = np.array(human.box, np.float32)
            if points is not None:
                box = refine_person_box(box, points, frame.shape[:2])
            for name, part in human.parts.items():
                if part_type(name) in types:
                    frame_of.append(index)
                    boxes.append(part.box)
                    heights.append(box[3] - box[1])
                    kinds.append(types.index(part_type(name)))
    if not frame_of:
        raise TrainError(f"no annotated part of the types {', '.join(types)}")
    return PartSamples(
        samples.frames,
        np.asarray(frame_of),
        np.asarray(boxes, np.float32),
        np.asarray(heights, np.float32),
        np.asarray(kinds, np.int64),
    )


def draw_patches(
    samples: PartSamples, indices: np.ndarray, config: RefinerConfig, rng: np.random.Generator
) -> np.ndarray:
    """(n, 4) patch boxes around noisy guesses of parts `indices`."""
    heights = samples.heights[indices]
    centres = box_centres(samples.boxes[indices])
    guesses = centres + rng.normal(0, config.guess_noise, (len(indices), 2)) * heights[:, None]
    sides = heights * np.exp(rng.normal(0, config.scale_jitter, len(indices)))
    return patch_boxes(guesses, sides.astype(np.float32), config.patch_scale)


def cut(samples: PartSamples, indices: np.ndarray, patches: np.ndarray, size: int) -> Tensor:
    """(n, 3, S, S) normalised patches, each cut from its part's frame."""
    return torch.from_numpy(
        np.concatenate(
            [
                cut_patches(frame_tensor(samples.frames[samples.frame_of[i]]), patch[None], size)
                for i, patch in zip(indices, patches, strict=True)
            ]
        )
    )


RefinerBatch = tuple[Tensor, Tensor, Tensor]
"""(patches n,3,S,S, target edges n,4 in patch sides, type indices n)."""


class RefinerBatches(EpochBatches):
    """One epoch of refiner batches, drawn in an order and with noise fixed by (seed, epoch)."""

    def __init__(self, samples: PartSamples, config: RefinerConfig, epoch: int) -> None:
        super().__init__(len(samples), config.batch_size, config.seed, epoch)
        self.samples, self.config = samples, config

    def __iter__(self) -> Iterator[RefinerBatch]:
        size = self.config.batch_size
        for start in range(0, len(self) * size, size):
            indices = self.order[start : start + size]
            patches = draw_patches(self.samples, indices, self.config, self.rng)
            inputs = cut(self.samples, indices, patches, self.config.input_size)
            targets = boxes_in_patches(self.samples.boxes[indices], patches)
            mirror = self.rng.random(len(indices)) < self.config.flip_prob
            inputs[torch.from_numpy(mirror)] = inputs[torch.from_numpy(mirror)].flip(-1)
            targets[mirror] = _mirror(targets[mirror])
            yield inputs, torch.from_numpy(targets), torch.from_numpy(self.samples.kinds[indices])


def _mirror(edges: np.ndarray) -> np.ndarray:
    """Edges (x1, y1, x2, y2) in patch sides of a horizontally mirrored patch."""
    return np.stack((1 - edges[:, 2], edges[:, 1], 1 - edges[:, 0], edges[:, 3]), axis=1)


def refiner_loss(model: nn.Module, batch: RefinerBatch) -> dict[str, Tensor]:
    """The `fit` step: L1 on the part's outer edges, in patch sides, on its type's output."""
    inputs, targets, kinds = batch
    outputs = model(inputs)[torch.arange(len(kinds)), kinds]  # n, 4
    return {"loss_edges": (patch_edges(outputs) - targets).abs().sum(dim=1).mean()}


def evaluate_refiner(
    model: nn.Module, samples: PartSamples, config: RefinerConfig, batch_size: int = 256
) -> dict[str, float]:
    """Share of refined boxes at IoU >= 0.5 and their mean IoU, from fixed noisy guesses."""
    rng = np.random.default_rng(VALIDATION_SEED)
    ious = []
    for start in range(0, len(samples), batch_size):
        indices = np.arange(start, min(start + batch_size, len(samples)))
        patches = draw_patches(samples, indices, config, rng)
        with torch.no_grad():
            outputs = model(cut(samples, indices, patches, config.input_size))
        chosen = outputs[torch.arange(len(indices)), torch.from_numpy(samples.kinds[indices])]
        boxes = patches_to_boxes(patch_edges(chosen).numpy(), patches)
        ious.extend(
            inclusive_iou(box, truth)
            for box, truth in zip(boxes, samples.boxes[indices], strict=True)
        )
    values = np.asarray(ious).clip(min=0)  # the scorer's -1 (no overlap) is no IoU
    return {
        "iou50": float((values >= AP50_IOU).mean()) if len(values) else math.nan,
        "mean_iou": float(values.mean()) if len(values) else math.nan,
    }


def train_refiner(config: RefinerConfig, resume: bool = False) -> dict[str, float]:
    """Train the refiner; writes `<out>/refiner.safetensors` and returns the metrics."""
    seed_everything(config.seed)
    samples = part_samples(
        load_frame_samples(Split.open(config.data), config.frames_per_video, config.max_videos),
        config.types,
    )
    validate = None
    if config.val_data is not None:
        val = part_samples(
            load_frame_samples(
                Split.open(config.val_data), config.val_frames_per_video, config.val_max_videos
            ),
            config.types,
        )

        def validate(model: nn.Module) -> dict[str, float]:
            return evaluate_refiner(model, val, config)

    model = models.build(config.arch, num_classes=len(config.types), input_size=config.input_size)
    metrics = fit(
        model,
        lambda epoch: RefinerBatches(samples, config, epoch),
        refiner_loss,
        config,
        config.out,
        resume=resume,
        validate=validate,
    )
    Checkpointer(config.out).save_weights(
        model,
        WEIGHTS_NAME,
        config.arch,
        list(config.types),
        extra={
            "input_shape": [3, config.input_size, config.input_size],
            PATCH_SCALE_KEY: config.patch_scale,
            "config": config.model_dump(mode="json"),
            "metrics": metrics,
        },
    )
    return metrics
