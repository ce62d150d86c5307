"""The `pose` recipe: a top-down HRNet trained on Gaussian heatmaps of the split's GT keypoints.

Samples are GT person boxes, jittered in centre and size so the network copes with detector
boxes, cut out by `parsing.inputs.pose_crops` exactly as the frame parser cuts them. Each of the 17
COCO keypoints becomes a Gaussian (sigma in heatmap pixels, peak 1) centred at the exact inverse of
`models.hrnet.heatmaps_to_frame`: ``x_hm = (x_frame - x1) * W_hm / (x2 - x1)``. Keypoints with
visibility 0 (outside the frame) or whose Gaussian misses the heatmap get target weight 0, and the
loss is mmpose's `KeypointMSELoss` with target weights. Half the samples are mirrored: the crop
flips, left and right keypoints swap (`models.hrnet.flip_indices`), x mirrors about the crop centre.

Validation reports PCK@0.1: the share of keypoints with visibility > 0 whose prediction (the frame
parser's own `parsing.frame_parser.estimate_keypoints`, flip test on) lies within 0.1 x the longer
side of the GT person box; the crops come from un-jittered GT boxes (an oracle detector).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

import models
from models.detection import IMAGENET_RGB
from models.hrnet import COCO_FLIP_PAIRS, HEATMAP_STRIDE, HeatmapDecoding, flip_indices
from parsing.frame_parser import estimate_keypoints
from parsing.inputs import frame_tensor, normalize_batch, pose_crops
from training.common import (
    Checkpointer,
    EpochBatches,
    TrainConfigBase,
    TrainError,
    fit,
    parser_network,
    seed_everything,
)
from training.data import Split

log = logging.getLogger(__name__)

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
"""The pose checkpoint's classes: COCO-17 keypoints in order (DESIGN.md §3)."""

WEIGHTS_NAME = "pose"
"""The final weights are `<out>/pose.safetensors`."""
GAUSSIAN_REACH = 3.0
"""A keypoint whose Gaussian centre lies this many sigmas off the heatmap gets weight 0."""


class PoseConfig(TrainConfigBase):
    """The pose recipe: data sampling, target and augmentation settings on top of the loop's."""

    arch: str = Field("hrnet_tiny", description="registry name of the pose network")
    input_shape: tuple[int, int, int] = Field(
        (3, 128, 96), description="per-sample input C,H,W; heatmaps are H/4 x W/4"
    )
    sigma: float = Field(2.0, gt=0, description="Gaussian sigma in heatmap pixels")
    loss_weight: float = Field(
        1.0, gt=0, description="factor on the mean-squared heatmap error (mmpose loss_weight)"
    )
    flip_prob: float = Field(0.5, ge=0, le=1, description="share of mirrored training samples")
    box_shift: float = Field(
        0.05, ge=0, lt=1, description="max centre shift of a GT box, as a share of its size"
    )
    box_scale: float = Field(
        0.1, ge=0, lt=1, description="max relative change of a GT box's width and height"
    )
    max_videos: int | None = Field(
        None, ge=1, description="training videos used (the first ones; none: all)"
    )
    frames_per_video: int = Field(
        8, ge=1, description="frames per training video decoded and kept (evenly spaced)"
    )
    min_visible: int = Field(
        4, ge=1, description="persons with fewer keypoints of visibility > 0 are skipped"
    )
    val_frames_per_video: int = Field(2, ge=1, description="frames per validation video")
    val_max_videos: int | None = Field(
        100, ge=1, description="validation videos used (the first ones; none: all)"
    )
    pck_threshold: float = Field(
        0.1, gt=0, description="PCK radius as a share of the GT person box's longer side"
    )
    flip_test: bool = Field(True, description="validate with the flip test, as the parser does")
    decoding: HeatmapDecoding = Field("classic", description="validation's heatmap decoding")


# ---------------------------------------------------------------- targets, augmentation, loss


def keypoint_targets(
    keypoints_xyv: np.ndarray,
    crop_boxes_xyxy: np.ndarray,
    heatmap_hw: tuple[int, int],
    sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets and target weights for keypoints seen through crop boxes.

    The centre of keypoint k is the exact inverse of `models.hrnet.heatmaps_to_frame`:
    ``x_hm = (x - x1) * W / (x2 - x1)``, ``y_hm = (y - y1) * H / (y2 - y1)``; heatmap pixel
    (row i, column j) sits at (x_hm, y_hm) = (j, i), so the arg-max decodes back to the keypoint.

    Args:
        keypoints_xyv: (N, K, 3) keypoints x, y in frame pixels and visibility (0 outside the
            frame, 1 occluded, 2 visible).
        crop_boxes_xyxy: (N, 4) crop boxes in frame pixels.
        heatmap_hw: (H, W) of the heatmaps.
        sigma: Gaussian sigma in heatmap pixels.

    Returns:
        (targets (N, K, H, W) float32 with peak 1, zero where the weight is 0;
        weights (N, K) float32, 1 for visibility > 0 with the Gaussian reaching the heatmap).
    """
    keypoints = np.asarray(keypoints_xyv, dtype=np.float64).reshape(len(crop_boxes_xyxy), -1, 3)
    boxes = np.asarray(crop_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    height, width = heatmap_hw
    scale_x = width / (boxes[:, 2] - boxes[:, 0])  # (N,)
    scale_y = height / (boxes[:, 3] - boxes[:, 1])
    x_hm = (keypoints[..., 0] - boxes[:, None, 0]) * scale_x[:, None]  # N,K
    y_hm = (keypoints[..., 1] - boxes[:, None, 1]) * scale_y[:, None]
    reach = GAUSSIAN_REACH * sigma
    inside = (
        (x_hm > -reach) & (x_hm < width - 1 + reach) & (y_hm > -reach) & (y_hm < height - 1 + reach)
    )
    weights = ((keypoints[..., 2] > 0) & inside).astype(np.float32)  # N,K
    columns = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    gauss_x = np.exp(-((columns - x_hm[..., None]) ** 2) / (2 * sigma**2))  # N,K,W
    gauss_y = np.exp(-((rows - y_hm[..., None]) ** 2) / (2 * sigma**2))  # N,K,H
    targets = gauss_y[..., :, None] * gauss_x[..., None, :]  # N,K,H,W
    targets *= weights[..., None, None]
    return targets.astype(np.float32), weights


def flip_samples(
    crops_nchw: Tensor,
    keypoints_xyv: np.ndarray,
    crop_boxes_xyxy: np.ndarray,
    flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS,
) -> tuple[Tensor, np.ndarray]:
    """Mirror crops and their keypoints horizontally.

    A crop box spans continuous x in [x1, x2]; mirroring the crop maps frame x to
    ``x1 + x2 - x`` (so heatmap x_hm to ``W - x_hm``, which `unflip_heatmaps`' one-pixel shift
    undoes at test time), and the left/right keypoints trade places.

    Args:
        crops_nchw: (N, C, h, w) crops.
        keypoints_xyv: (N, K, 3) keypoints in frame pixels with visibility.
        crop_boxes_xyxy: (N, 4) the crop boxes the crops were cut from.

    Returns:
        (mirrored crops (N, C, h, w), mirrored keypoints (N, K, 3) in the same frame pixels).
    """
    keypoints = np.asarray(keypoints_xyv, dtype=np.float64)
    order = flip_indices(keypoints.shape[1], flip_pairs)
    flipped = keypoints[:, order].copy()  # N,K,3 left/right swapped
    boxes = np.asarray(crop_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    flipped[..., 0] = (boxes[:, 0] + boxes[:, 2])[:, None] - flipped[..., 0]
    return crops_nchw.flip(-1), flipped


def keypoint_mse_loss(heatmaps: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """mmpose `KeypointMSELoss(use_target_weight=True)`: mean of ``w_k * (pred - target)^2``.

    Args:
        heatmaps: (N, K, H, W) predicted heatmaps.
        targets: (N, K, H, W) target heatmaps.
        weights: (N, K) target weights.

    Returns:
        A scalar, averaged over every element of (N, K, H, W).
    """
    squared = (heatmaps - targets) ** 2  # N,K,H,W
    return (squared * weights[..., None, None]).mean()


def jitter_boxes(
    boxes_xyxy: np.ndarray, shift: float, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """Move each box's centre by up to `shift` x its size and scale its sides by 1 +- `scale`.

    Args:
        boxes_xyxy: (N, 4) boxes in frame pixels.

    Returns:
        (N, 4) float64 jittered boxes (same centre and size when both amounts are 0).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]  # N,2
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    centre = centre + rng.uniform(-shift, shift, size.shape) * size
    size = size * (1 + rng.uniform(-scale, scale, size.shape))
    return np.concatenate((centre - size / 2, centre + size / 2), axis=1)


def pck_hits(
    predicted_xy: np.ndarray,
    keypoints_xyv: np.ndarray,
    person_boxes_xyxy: np.ndarray,
    threshold: float,
) -> tuple[int, int]:
    """Count correct keypoints: PCK with radius `threshold` x the person box's longer side.

    Args:
        predicted_xy: (N, K, 2) predicted keypoints in frame pixels.
        keypoints_xyv: (N, K, 3) GT keypoints with visibility; only visibility > 0 counts.
        person_boxes_xyxy: (N, 4) GT person boxes.

    Returns:
        (correct keypoints, keypoints counted).
    """
    boxes = np.asarray(person_boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    radius = threshold * np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # N
    distance = np.linalg.norm(np.asarray(predicted_xy) - keypoints_xyv[..., :2], axis=-1)  # N,K
    counted = keypoints_xyv[..., 2] > 0
    return int(((distance <= radius[:, None]) & counted).sum()), int(counted.sum())


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class PoseSamples:
    """Persons of decoded frames, kept in memory for the whole run.

    Attributes:
        frames: (F, H, W, 3) uint8 RGB frames.
        frame_of: (P,) int index into `frames` of each person.
        boxes_xyxy: (P, 4) float32 GT person boxes in frame pixels.
        keypoints_xyv: (P, 17, 3) float32 GT keypoints in frame pixels with visibility.
    """

    frames: np.ndarray
    frame_of: np.ndarray
    boxes_xyxy: np.ndarray
    keypoints_xyv: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_of)

    def crops(
        self, indices: np.ndarray, boxes_xyxy: np.ndarray, input_hw: tuple[int, int]
    ) -> tuple[Tensor, np.ndarray]:
        """Cut the pose crops of persons `indices` at `boxes_xyxy` (through `pose_crops`).

        Returns:
            ((n, 3, h, w) 0..255 float crops, (n, 4) crop boxes in frame pixels).
        """
        crops, crop_boxes = [], []
        for index, box in zip(indices, boxes_xyxy, strict=True):
            frame = frame_tensor(self.frames[self.frame_of[index]])
            crop, crop_box = pose_crops(frame, box[None], input_hw)
            crops.append(crop)
            crop_boxes.append(crop_box)
        return torch.cat(crops), np.concatenate(crop_boxes)


def _evenly(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over range(count) (all of them when count <= wanted)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, wanted)})


def load_samples(
    directory: Path, frames_per_video: int, min_visible: int, max_videos: int | None = None
) -> PoseSamples:
    """Decode `frames_per_video` evenly spaced frames of each video and collect their persons."""
    split = Split.open(directory)
    videos = split.videos if max_videos is None else split.videos[:max_videos]
    frames: list[np.ndarray] = []
    frame_of: list[int] = []
    boxes: list[np.ndarray] = []
    keypoints: list[np.ndarray] = []
    for video in videos:
        persons_by_frame = split.keypoints(video)
        chosen = _evenly(len(persons_by_frame), frames_per_video)
        decoded = split.frames(video, chosen)
        for frame, index in zip(decoded, chosen, strict=True):
            kept = [
                person
                for person in persons_by_frame[index]
                if int((person.keypoints_xyv[:, 2] > 0).sum()) >= min_visible
            ]
            if not kept:
                continue
            frames.append(frame)
            for person in kept:
                frame_of.append(len(frames) - 1)
                boxes.append(person.box_xyxy)
                keypoints.append(person.keypoints_xyv)
    if not frame_of:
        raise TrainError(f"{directory}: no person with {min_visible}+ labelled keypoints")
    log.info("pose samples from %s: %d persons in %d frames", directory, len(frame_of), len(frames))
    return PoseSamples(
        frames=np.stack(frames),
        frame_of=np.asarray(frame_of),
        boxes_xyxy=np.asarray(boxes, dtype=np.float32),
        keypoints_xyv=np.asarray(keypoints, dtype=np.float32),
    )


PoseBatch = tuple[Tensor, Tensor, Tensor]
"""(normalised crops N,3,h,w float32, targets N,K,H/4,W/4 float32, weights N,K float32)."""


class PoseBatches(EpochBatches):
    """One epoch of augmented pose batches, built lazily in an order fixed by (seed, epoch)."""

    def __init__(self, samples: PoseSamples, config: PoseConfig, epoch: int) -> None:
        super().__init__(len(samples), config.batch_size, config.seed, epoch)
        self.samples = samples
        self.config = config

    def __iter__(self) -> Iterator[PoseBatch]:
        config = self.config
        input_hw = (config.input_shape[1], config.input_shape[2])
        heatmap_hw = (input_hw[0] // HEATMAP_STRIDE, input_hw[1] // HEATMAP_STRIDE)
        for start in range(0, len(self) * config.batch_size, config.batch_size):
            indices = self.order[start : start + config.batch_size]
            boxes = jitter_boxes(
                self.samples.boxes_xyxy[indices], config.box_shift, config.box_scale, self.rng
            )
            crops, crop_boxes = self.samples.crops(indices, boxes, input_hw)
            keypoints = self.samples.keypoints_xyv[indices].astype(np.float64)
            mirror = self.rng.random(len(indices)) < config.flip_prob
            if mirror.any():
                flipped_crops, flipped_keypoints = flip_samples(
                    crops[mirror], keypoints[mirror], crop_boxes[mirror]
                )
                crops[torch.from_numpy(mirror)] = flipped_crops
                keypoints[mirror] = flipped_keypoints
            targets, weights = keypoint_targets(keypoints, crop_boxes, heatmap_hw, config.sigma)
            batch = torch.from_numpy(normalize_batch(crops, IMAGENET_RGB))
            yield batch, torch.from_numpy(targets), torch.from_numpy(weights)


def pose_step_loss(loss_weight: float) -> Callable[[nn.Module, PoseBatch], dict[str, Tensor]]:
    """The `fit` step: (model, batch) -> {"loss_kpt": weighted heatmap MSE}."""

    def step(model: nn.Module, batch: PoseBatch) -> dict[str, Tensor]:
        crops, targets, weights = batch
        return {"loss_kpt": loss_weight * keypoint_mse_loss(model(crops), targets, weights)}

    return step


def predict_keypoints(
    model: nn.Module,
    samples: PoseSamples,
    input_hw: tuple[int, int],
    flip_test: bool = True,
    decoding: HeatmapDecoding = "classic",
    batch_size: int = 64,
) -> np.ndarray:
    """(N, 17, 3) keypoints of `model` on the GT-box crops of `samples`, run and decoded by the
    frame parser's `estimate_keypoints` (the model is left in eval mode)."""
    network = parser_network(model, input_hw)
    keypoints = []
    for start in range(0, len(samples), batch_size):
        indices = np.arange(start, min(start + batch_size, len(samples)))
        crops, crop_boxes = samples.crops(indices, samples.boxes_xyxy[indices], input_hw)
        keypoints.append(
            estimate_keypoints(network, crops, crop_boxes, flip_test=flip_test, decoding=decoding)
        )
    return np.concatenate(keypoints) if keypoints else np.zeros((0, 17, 3), np.float32)


def evaluate_pck(
    model: nn.Module,
    samples: PoseSamples,
    input_hw: tuple[int, int],
    threshold: float,
    flip_test: bool = True,
    decoding: HeatmapDecoding = "classic",
) -> dict[str, float]:
    """PCK of `model` on the GT-box crops of `samples` (`predict_keypoints`).

    Returns:
        {"pck": share of correct keypoints, "keypoints": keypoints counted}.
    """
    keypoints = predict_keypoints(model, samples, input_hw, flip_test, decoding)
    hits, counted = pck_hits(
        keypoints[..., :2], samples.keypoints_xyv, samples.boxes_xyxy, threshold
    )
    return {"pck": hits / counted if counted else math.nan, "keypoints": float(counted)}


def train_pose(config: PoseConfig, resume: bool = False) -> dict[str, float]:
    """Train the pose network on `config.data` and save `<out>/pose.safetensors`.

    Returns:
        `training.common.fit`'s metrics (val_pck when `val_data` is set).
    """
    seed_everything(config.seed)
    samples = load_samples(
        config.data, config.frames_per_video, config.min_visible, config.max_videos
    )
    input_hw = (config.input_shape[1], config.input_shape[2])
    validate = None
    if config.val_data is not None:
        val_samples = load_samples(
            config.val_data, config.val_frames_per_video, config.min_visible, config.val_max_videos
        )

        def validate(model: nn.Module) -> dict[str, float]:
            return evaluate_pck(
                model,
                val_samples,
                input_hw,
                config.pck_threshold,
                config.flip_test,
                config.decoding,
            )

    model = models.build(config.arch, num_classes=len(COCO_KEYPOINT_NAMES))
    metrics = fit(
        model,
        lambda epoch: PoseBatches(samples, config, epoch),
        pose_step_loss(config.loss_weight),
        config,
        config.out,
        resume=resume,
        validate=validate,
    )
    Checkpointer(config.out).save_weights(
        model,
        WEIGHTS_NAME,
        config.arch,
        list(COCO_KEYPOINT_NAMES),
        extra={
            "input_shape": list(config.input_shape),
            "config": config.model_dump(mode="json"),
            "data_seed": config.seed,
            "metrics": metrics,
        },
    )
    return metrics
