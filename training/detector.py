"""The YOLOF recipes: the person detector on full frames and the part detector on painted crops.

Both train a registered YOLOF (`yolof_tiny` by default) with `training.yolof_loss` and the
report's schedule (`training.common.fit`), on annotated frames of a synthetic split (every 5th
frame carries part ground truth; `frames_per_video` of them are decoded per video and kept in
memory as uint8).

* ``person``: whole frames placed into the network input like `models.detection.letterbox`
  (scaled to fit, top-left origin), with horizontal flips and scale jitter (the scaled frame is
  padded or cut at a random offset); targets are the ground-truth person boxes, class "person".
* ``parts``: for every annotated person, the box is jittered (as a detector's box would be),
  enlarged to contain its keypoints (`parsing.boxes.refine_person_box`), cut and optionally painted
  by `parsing.inputs.part_crops` exactly as the frame parser does; targets are the ground-truth
  part boxes mapped into crop pixels (`parsing.crops.frame_points_to_crop`), classes
  `tps.vocabulary.PARTS`. Keypoints are the split's ground truth with a little Gaussian noise
  (``keypoints: gt``), scored 1 where they lie in the frame and 0 outside.

Ground-truth boxes keep the annotation's convention (inclusive corners), so detections compare
directly with the ground truth. Validation and the `evaluate_*` entry points report VOC AP50
(`training.metrics`): persons on whole annotated frames; parts per class on crops of the
ground-truth persons (no jitter, no noise), averaged over the parts present.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, FilePath, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

import models
from models.detection import IMAGENET_RGB, Normalization, box_iou, decode, preprocess
from parsing.boxes import refine_person_box
from parsing.crops import frame_points_to_crop
from parsing.frame_parser import PoseEstimator
from parsing.inputs import frame_tensor, part_crops, pose_crops
from parsing.networks import load_network
from parsing.settings import PartSettings, PoseSettings
from tps.formats import GtHuman
from tps.vocabulary import PARTS
from training.common import (
    Checkpointer,
    EpochBatches,
    TrainConfigBase,
    TrainError,
    fit,
    seed_everything,
)
from training.data import PersonKeypoints, Split
from training.metrics import average_precision
from training.yolof_loss import yolof_loss

log = logging.getLogger(__name__)

PERSON_CLASSES = ("person",)
PERSON_WEIGHTS = "person"
PARTS_WEIGHTS = "parts"
MIN_BOX_SIDE = 1.0
"""Targets narrower or lower than this (pixels, after clipping) are dropped."""
KEYPOINT_MATCH_IOU = 0.5
"""An annotated person takes the keypoints of the keypoints.json person its box overlaps most."""
IN_FRAME_SCORE = 1.0
REFINE_MIN_SCORE: float = PoseSettings.model_fields["min_keypoint_score"].default
PAINT_MIN_SCORE: float = PartSettings.model_fields["paint_min_score"].default
"""The parser's defaults for refining boxes around keypoints and painting them."""
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


class PersonConfig(DetectorConfig):
    """The person detector recipe (YOLOF on whole frames, one class)."""

    input_shape: tuple[int, int, int] = Field((3, 256, 320), description="network input C, H, W")
    flip: bool = Field(True, description="mirror half of the frames")
    scale_jitter: tuple[float, float] = Field(
        (0.8, 1.2), description="range of the extra scale on top of the fit-to-input scale"
    )


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


# ---------------------------------------------------------------- samples


@dataclass(frozen=True)
class FrameSamples:
    """Decoded annotated frames with their ground truth.

    Attributes:
        frames: (N, H, W, 3) uint8 RGB.
        humans: per frame, the annotated humans (person box, part boxes and states).
        keypoints: per frame, per human, (17, 3) float32 x, y, score: ground truth scores 1 in
            the frame and 0 outside (None when keypoints.json has no matching person);
            `pose_keypoints` puts the pose network's heatmap maxima there.
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


# ---------------------------------------------------------------- person detector


def place_image(
    frame_rgb: np.ndarray,
    boxes_xyxy: np.ndarray,
    input_hw: tuple[int, int],
    normalization: Normalization = IMAGENET_RGB,
    *,
    zoom: float = 1.0,
    offset_xy: tuple[int, int] = (0, 0),
    flip: bool = False,
) -> tuple[Tensor, np.ndarray]:
    """Put one frame and its boxes into the network input, as `letterbox` does plus augmentation.

    The frame is optionally mirrored, scaled by ``zoom`` times the fit-to-input scale, normalised
    and pasted with its top-left corner at `offset_xy` (negative: cut off) on a zero canvas. With
    the defaults the tensor equals `models.detection.letterbox`'s.

    Args:
        frame_rgb: (H, W, 3) uint8 RGB.
        boxes_xyxy: (G, 4) boxes in frame pixels (inclusive corners).
        input_hw: network input height and width.

    Returns:
        (3, H_in, W_in) float32 input and the (G', 4) float32 boxes in input pixels that keep at
        least `MIN_BOX_SIDE` pixels on each side after clipping (G' <= G).
    """
    height, width = frame_rgb.shape[:2]
    input_h, input_w = input_hw
    image = frame_tensor(frame_rgb)  # 3,H,W
    boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    if flip:
        image = image.flip(-1)
        boxes = np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0],
                          boxes[:, 3]], axis=1)  # fmt: skip
    if normalization.channel_order == "bgr":
        image = image.flip(0)
    scale = min(input_h / height, input_w / width) * zoom
    resized_h = max(1, int(height * scale + 0.5))
    resized_w = max(1, int(width * scale + 0.5))
    if zoom <= 1.0:  # as letterbox: rounding never overflows the input
        resized_h, resized_w = min(input_h, resized_h), min(input_w, resized_w)
    resized = F.interpolate(
        image[None], size=(resized_h, resized_w), mode="bilinear", align_corners=False
    )[0]  # 3,h,w
    mean = torch.tensor(normalization.mean).view(3, 1, 1)
    std = torch.tensor(normalization.std).view(3, 1, 1)
    resized = (resized - mean) / std
    canvas = torch.zeros(3, input_h, input_w)
    offset_x, offset_y = offset_xy
    src_x, src_y = max(0, -offset_x), max(0, -offset_y)
    dst_x, dst_y = max(0, offset_x), max(0, offset_y)
    span_w = min(resized_w - src_x, input_w - dst_x)
    span_h = min(resized_h - src_y, input_h - dst_y)
    if span_w > 0 and span_h > 0:
        canvas[:, dst_y : dst_y + span_h, dst_x : dst_x + span_w] = resized[
            :, src_y : src_y + span_h, src_x : src_x + span_w
        ]
    factors = np.array([resized_w / width, resized_h / height] * 2, dtype=np.float32)
    shift = np.array([offset_x, offset_y] * 2, dtype=np.float32)
    placed = boxes * factors + shift
    placed[:, 0::2] = placed[:, 0::2].clip(0, input_w)
    placed[:, 1::2] = placed[:, 1::2].clip(0, input_h)
    keep = (placed[:, 2] - placed[:, 0] >= MIN_BOX_SIDE) & (
        placed[:, 3] - placed[:, 1] >= MIN_BOX_SIDE
    )
    return canvas, placed[keep]


DetectorBatch = tuple[Tensor, list[Tensor], list[Tensor]]
"""(inputs N,3,H,W float32, per-image G_i,4 boxes in input pixels, per-image G_i int64 labels)."""


def _batch_count(samples: int, batch_size: int) -> int:
    return max(1, samples // batch_size) if samples else 0


class PersonBatches(EpochBatches):
    """One epoch of augmented person-detector batches, in an order fixed by (seed, epoch)."""

    def __init__(self, samples: FrameSamples, config: PersonConfig, epoch: int) -> None:
        super().__init__(len(samples), config.batch_size, config.seed, epoch)
        self.samples, self.config = samples, config

    def __len__(self) -> int:
        return _batch_count(len(self.samples), self.config.batch_size)

    def __iter__(self) -> Iterator[DetectorBatch]:
        size = self.config.batch_size
        input_hw = self.config.input_shape[1:]
        low, high = self.config.scale_jitter
        for start in range(0, len(self) * size, size):
            images, boxes = [], []
            for index in self.order[start : start + size]:
                frame = self.samples.frames[index]
                zoom = float(self.rng.uniform(low, high))
                flip = bool(self.config.flip and self.rng.random() < 0.5)
                scale = min(input_hw[0] / frame.shape[0], input_hw[1] / frame.shape[1]) * zoom
                room_x = input_hw[1] - int(frame.shape[1] * scale + 0.5)
                room_y = input_hw[0] - int(frame.shape[0] * scale + 0.5)
                offset = (_random_offset(self.rng, room_x), _random_offset(self.rng, room_y))
                gt = np.array([human.box for human in self.samples.humans[index]], np.float32)
                image, placed = place_image(
                    frame, gt, input_hw, zoom=zoom, offset_xy=offset, flip=flip
                )
                images.append(image)
                boxes.append(torch.from_numpy(placed))
            yield (
                torch.stack(images),
                boxes,
                [torch.zeros(len(b), dtype=torch.int64) for b in boxes],
            )


def _random_offset(rng: np.random.Generator, room: int) -> int:
    """An offset in [0, room] when the image is smaller than the input, else in [room, 0]."""
    return int(rng.integers(min(0, room), max(0, room) + 1))


def detector_step_loss(model: nn.Module, batch: DetectorBatch) -> dict[str, Tensor]:
    """YOLOF losses of one batch (focal + GIoU)."""
    images, boxes, labels = batch
    cls_logits, bbox_deltas = model(images)
    return yolof_loss(cls_logits, bbox_deltas, boxes, labels, model.anchor_sizes, model.stride)


def detect(
    model: nn.Module, images_rgb: Sequence[np.ndarray], input_hw: tuple[int, int]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run a YOLOF as the frame parser does; per image ((K, 4) boxes, (K,) scores, (K,) labels).

    Boxes are in the pixels of the given images; everything above `EVAL_SCORE_THR` survives
    (after per-class NMS at `EVAL_NMS_IOU`), so AP sees the whole precision-recall curve.
    """
    normalization = getattr(model, "normalization", IMAGENET_RGB)
    found = []
    for start in range(0, len(images_rgb), EVAL_BATCH):
        chunk = list(images_rgb[start : start + EVAL_BATCH])
        batch, metas = preprocess(chunk, input_hw, normalization)
        with torch.no_grad():
            cls_logits, bbox_deltas = model(batch)
        for detections in decode(
            cls_logits,
            bbox_deltas,
            metas,
            score_thr=EVAL_SCORE_THR,
            nms_iou=EVAL_NMS_IOU,
            max_per_image=EVAL_MAX_DETECTIONS,
            stride=model.stride,
            anchor_sizes=model.anchor_sizes,
        ):
            found.append(
                (
                    detections.boxes_xyxy.numpy(),
                    detections.scores.numpy(),
                    detections.labels.numpy(),
                )
            )
    return found


def person_ap50(model: nn.Module, samples: FrameSamples, input_hw: tuple[int, int]) -> float:
    """Person AP50 of `model` on whole frames."""
    was_training = model.training
    model.eval()
    found = detect(model, list(samples.frames), input_hw)
    model.train(was_training)
    ground_truths = [
        np.array([human.box for human in humans], np.float32).reshape(-1, 4)
        for humans in samples.humans
    ]
    return average_precision([(boxes, scores) for boxes, scores, _ in found], ground_truths)


def _metadata(config: DetectorConfig, metrics: dict[str, float]) -> dict[str, object]:
    return {
        "input_shape": list(config.input_shape),
        "config": config.model_dump(mode="json"),
        "data_seed": config.seed,
        "metrics": metrics,
    }


def train_person(config: PersonConfig, resume: bool = False) -> dict[str, float]:
    """Train the person detector; writes `<out>/person.safetensors` and returns the metrics."""
    seed_everything(config.seed)
    samples = load_frame_samples(
        Split.open(config.data), config.frames_per_video, config.max_videos
    )
    input_hw = (config.input_shape[1], config.input_shape[2])
    validate = None
    if config.val_data is not None:
        val = load_frame_samples(
            Split.open(config.val_data), config.val_frames_per_video, config.val_max_videos
        )

        def validate(model: nn.Module) -> dict[str, float]:
            return {"ap50": person_ap50(model, val, input_hw)}

    model = models.build(config.arch, num_classes=len(PERSON_CLASSES))
    metrics = fit(
        model,
        lambda epoch: PersonBatches(samples, config, epoch),
        detector_step_loss,
        config,
        config.out,
        resume,
        validate,
    )
    path = Checkpointer(config.out).save_weights(
        model, PERSON_WEIGHTS, config.arch, list(PERSON_CLASSES), _metadata(config, metrics)
    )
    log.info("person detector written to %s: %s", path, metrics)
    return metrics


# ---------------------------------------------------------------- part detector


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

    The network runs as the frame parser runs it (`parsing.frame_parser.PoseEstimator`, with its
    default settings: flip test on), on crops of the ground-truth person boxes.
    """
    settings = PoseSettings(weights=Path(pose_weights))
    estimator = PoseEstimator(load_network(settings), settings)
    keypoints: list[list[np.ndarray | None]] = []
    for frame, humans in zip(samples.frames, samples.humans, strict=True):
        boxes = np.array([human.box for human in humans], np.float32).reshape(-1, 4)
        crops, crop_boxes = pose_crops(frame_tensor(frame), boxes, estimator.network.input_hw)
        keypoints.append(list(estimator.keypoints(crops, crop_boxes)))
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
        return _batch_count(len(self.persons), self.config.batch_size)

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
    was_training = model.training
    model.eval()
    found = detect(model, crops, input_hw)
    model.train(was_training)
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

    model = models.build(config.arch, num_classes=len(PARTS))
    metrics = fit(
        model,
        lambda epoch: PartBatches(samples, persons, config, epoch),
        detector_step_loss,
        config,
        config.out,
        resume,
        validate,
    )
    path = Checkpointer(config.out).save_weights(
        model, PARTS_WEIGHTS, config.arch, list(PARTS), _metadata(config, metrics)
    )
    log.info("part detector written to %s: %s", path, metrics)
    return metrics


# ---------------------------------------------------------------- evaluation entry points


def _load_detector(weights: str | Path) -> tuple[nn.Module, tuple[int, int], dict]:
    """A trained detector, its input size and its training config (from the checkpoint)."""
    model, report = models.build_from_checkpoint(weights)
    model.eval()
    input_shape = json.loads(report.metadata.get("input_shape", "null")) or model.input_shape
    return (
        model,
        (int(input_shape[1]), int(input_shape[2])),
        json.loads(report.metadata.get("config", "{}")),
    )


def evaluate_person(
    weights: str | Path,
    split: str | Path,
    frames_per_video: int | None = None,
    max_videos: int | None = None,
) -> dict[str, float]:
    """Person AP50 of a trained detector on a split's annotated frames (all of them by default)."""
    model, input_hw, _ = _load_detector(weights)
    samples = load_frame_samples(Split.open(split), frames_per_video, max_videos)
    return {"ap50": person_ap50(model, samples, input_hw)}


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
    model, input_hw, trained = _load_detector(weights)
    if paint is None:
        paint = bool(trained.get("paint", True))
    samples, persons = part_samples(Split.open(split), frames_per_video, max_videos, pose_weights)
    per_part = parts_ap50(model, samples, persons, input_hw, paint)
    return {"ap50": mean_ap(per_part), "per_part": per_part}
