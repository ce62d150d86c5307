"""What the two YOLOF recipes share: annotated-frame samples, the batch contract, the step loss,
evaluation through the frame parser's detection, and checkpoint metadata.

Both recipes (`training.person`, `training.parts`) train a registered YOLOF (`yolof_tiny` by
default) with `training.yolof_loss` and the report's schedule (`training.common.fit`), on
annotated frames of a synthetic split (every 5th frame carries part ground truth;
`frames_per_video` of them are decoded per video and kept in memory as uint8).

Ground-truth boxes keep the annotation's convention (inclusive corners), so detections compare
directly with the ground truth. Validation and the `evaluate_*` entry points report VOC AP50
(`training.metrics`) of the boxes `parsing.frame_parser.detect` finds, run on the model being
trained, so training measures what the parser will serve.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

import models
from models.detection import box_iou
from parsing.frame_parser import detect as parser_detect
from tps.formats import GtHuman
from training.common import (
    Batches,
    Checkpointer,
    TrainConfigBase,
    TrainError,
    Validate,
    fit,
    parser_network,
)
from training.data import PersonKeypoints, Split
from training.yolof_loss import yolof_loss

log = logging.getLogger(__name__)

MIN_BOX_SIDE = 1.0
"""Targets narrower or lower than this (pixels, after clipping) are dropped."""
KEYPOINT_MATCH_IOU = 0.5
"""An annotated person takes the keypoints of the keypoints.json person its box overlaps most."""
IN_FRAME_SCORE = 1.0
EVAL_SCORE_THR = 0.01
EVAL_NMS_IOU = 0.5
EVAL_MAX_DETECTIONS = 100
EVAL_BATCH = 16


class DetectorConfig(TrainConfigBase):
    """Fields shared by the person and the part detector recipes."""

    arch: str = Field("yolof_tiny", description="registered YOLOF builder")
    input_shape: tuple[int, int, int] = Field(description="network input C, H, W (H, W / stride)")
    frames_per_video: int = Field(4, ge=1, description="annotated frames decoded per video")
    max_videos: int | None = Field(None, ge=1, description="use only the first N videos")
    val_frames_per_video: int = Field(2, ge=1, description="annotated frames per val video")
    val_max_videos: int | None = Field(None, ge=1, description="use only the first N val videos")


# ---------------------------------------------------------------- samples


@dataclass(frozen=True)
class FrameSamples:
    """Decoded annotated frames with their ground truth.

    Attributes:
        frames: (N, H, W, 3) uint8 RGB.
        humans: per frame, the annotated humans (person box, part boxes and states).
        keypoints: per frame, per human, (17, 3) float32 x, y, score: ground truth scores 1 in
            the frame and 0 outside (None when keypoints.json has no matching person);
            `training.parts.pose_keypoints` puts the pose network's keypoints there.
    """

    frames: np.ndarray
    humans: list[list[GtHuman]]
    keypoints: list[list[np.ndarray | None]]

    def __len__(self) -> int:
        return len(self.humans)


def evenly(items: Sequence[int], count: int | None) -> list[int]:
    """`count` items spread evenly over `items` (all of them when there are fewer, or None)."""
    if count is None or len(items) <= count:
        return list(items)
    return [items[int(position)] for position in np.linspace(0, len(items) - 1, count).round()]


def _keypoint_scores(person: PersonKeypoints) -> np.ndarray:
    """(17, 3) x, y, score: keypoints inside the frame score 1, those outside 0."""
    keypoints = person.keypoints_xyv.copy()
    keypoints[:, 2] = np.where(keypoints[:, 2] > 0, IN_FRAME_SCORE, 0.0)
    return keypoints


def _match_keypoints(
    humans: Sequence[GtHuman], persons: Sequence[PersonKeypoints]
) -> list[np.ndarray | None]:
    """For each annotated human, the keypoints of the person whose box overlaps it most."""
    if not humans or not persons:
        return [None] * len(humans)
    ious = box_iou(
        torch.tensor([human.box for human in humans], dtype=torch.float32),
        torch.from_numpy(np.stack([person.box_xyxy for person in persons])),
    )  # humans, persons
    best = ious.max(dim=1)
    return [
        _keypoint_scores(persons[int(index)]) if float(iou) >= KEYPOINT_MATCH_IOU else None
        for iou, index in zip(best.values, best.indices, strict=True)
    ]


def load_frame_samples(
    split: Split, frames_per_video: int | None, max_videos: int | None = None
) -> FrameSamples:
    """Decode `frames_per_video` evenly spaced annotated frames (with humans) of each video.

    None takes every annotated frame; `max_videos` keeps the first videos (sorted by name).

    Raises:
        TrainError: the split has no annotated frame with a human.
    """
    videos = split.videos[:max_videos] if max_videos is not None else split.videos
    frames: list[np.ndarray] = []
    humans: list[list[GtHuman]] = []
    keypoints: list[list[np.ndarray | None]] = []
    for video in videos:
        annotated = {index: people for index, people in split.annotated(video).items() if people}
        chosen = evenly(sorted(annotated), frames_per_video)
        if not chosen:
            continue
        persons = split.keypoints(video)
        frames.extend(split.frames(video, chosen))
        for index in chosen:
            humans.append(annotated[index])
            keypoints.append(_match_keypoints(annotated[index], persons[index]))
    if not frames:
        raise TrainError(f"split {split.directory}: no annotated frame with a person")
    log.info("%s: %d annotated frames from %d videos", split.directory, len(frames), len(videos))
    return FrameSamples(np.stack(frames), humans, keypoints)


# ---------------------------------------------------------------- batches and loss


DetectorBatch = tuple[Tensor, list[Tensor], list[Tensor]]
"""(inputs N,3,H,W float32, per-image G_i,4 boxes in input pixels, per-image G_i int64 labels)."""


def batch_count(samples: int, batch_size: int) -> int:
    """Full batches of an epoch (at least one when there is any sample)."""
    return max(1, samples // batch_size) if samples else 0


def detector_step_loss(model: nn.Module, batch: DetectorBatch) -> dict[str, Tensor]:
    """YOLOF losses of one batch (focal + GIoU)."""
    images, boxes, labels = batch
    cls_logits, bbox_deltas = model(images)
    return yolof_loss(cls_logits, bbox_deltas, boxes, labels, model.anchor_sizes, model.stride)


# ---------------------------------------------------------------- evaluation


def detect(
    model: nn.Module, images_rgb: Sequence[np.ndarray], input_hw: tuple[int, int]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The frame parser's detection (`parsing.frame_parser.detect`) of a training model; per
    image ((K, 4) boxes, (K,) scores, (K,) labels) in the pixels of the given images.

    Everything above `EVAL_SCORE_THR` survives (after per-class NMS at `EVAL_NMS_IOU`), so AP
    sees the whole precision-recall curve. Images go `EVAL_BATCH` at a time to bound memory. The
    model runs in eval mode and is left in the mode it came in.
    """
    was_training = model.training
    network = parser_network(model, input_hw)
    found = []
    for start in range(0, len(images_rgb), EVAL_BATCH):
        for detections in parser_detect(
            network,
            images_rgb[start : start + EVAL_BATCH],
            score_thr=EVAL_SCORE_THR,
            nms_iou=EVAL_NMS_IOU,
            max_per_image=EVAL_MAX_DETECTIONS,
        ):
            found.append(
                (
                    detections.boxes_xyxy.numpy(),
                    detections.scores.numpy(),
                    detections.labels.numpy(),
                )
            )
    model.train(was_training)
    return found


# ---------------------------------------------------------------- training and checkpoints


def train_detector(
    model: nn.Module,
    batches: Callable[[int], Batches],
    config: DetectorConfig,
    resume: bool,
    validate: Validate | None,
    weights_name: str,
    classes: Sequence[str],
) -> dict[str, float]:
    """`fit` with the YOLOF losses, then write `<out>/<weights_name>.safetensors`.

    The checkpoint records, besides the weights, the input shape, the config and the metrics.
    """
    metrics = fit(model, batches, detector_step_loss, config, config.out, resume, validate)
    metadata = {
        "input_shape": list(config.input_shape),
        "config": config.model_dump(mode="json"),
        "data_seed": config.seed,
        "metrics": metrics,
    }
    path = Checkpointer(config.out).save_weights(
        model, weights_name, config.arch, list(classes), metadata
    )
    log.info("%s detector written to %s: %s", weights_name, path, metrics)
    return metrics


def load_detector(weights: str | Path) -> tuple[nn.Module, tuple[int, int], dict]:
    """A trained detector, its input size and its training config (from the checkpoint)."""
    model, report = models.build_from_checkpoint(weights)
    model.eval()
    input_shape = json.loads(report.metadata.get("input_shape", "null")) or model.input_shape
    return (
        model,
        (int(input_shape[1]), int(input_shape[2])),
        json.loads(report.metadata.get("config", "{}")),
    )
