"""The `person` recipe: a YOLOF person detector trained on whole frames, one class "person".

Frames are placed into the network input like `models.detection.letterbox` (scaled to fit,
top-left origin), with horizontal flips and scale jitter (the scaled frame is padded or cut at a
random offset); targets are the ground-truth person boxes. Validation and `evaluate_person` report
person AP50 on whole annotated frames (`training.detection` holds what this recipe shares with
the part detector's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

import models
from models.detection import IMAGENET_RGB, Normalization
from parsing.inputs import frame_tensor
from training.common import EpochBatches, seed_everything
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

PERSON_CLASSES = ("person",)
PERSON_WEIGHTS = "person"


class PersonConfig(DetectorConfig):
    """The person detector recipe (YOLOF on whole frames, one class)."""

    input_shape: tuple[int, int, int] = Field((3, 256, 320), description="network input C, H, W")
    flip: bool = Field(True, description="mirror half of the frames")
    scale_jitter: tuple[float, float] = Field(
        (0.8, 1.2), description="range of the extra scale on top of the fit-to-input scale"
    )


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


class PersonBatches(EpochBatches):
    """One epoch of augmented person-detector batches, in an order fixed by (seed, epoch)."""

    def __init__(self, samples: FrameSamples, config: PersonConfig, epoch: int) -> None:
        super().__init__(len(samples), config.batch_size, config.seed, epoch)
        self.samples, self.config = samples, config

    def __len__(self) -> int:
        return batch_count(len(self.samples), self.config.batch_size)

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


def person_ap50(model: nn.Module, samples: FrameSamples, input_hw: tuple[int, int]) -> float:
    """Person AP50 of `model` on whole frames."""
    found = detect(model, list(samples.frames), input_hw)
    ground_truths = [
        np.array([human.box for human in humans], np.float32).reshape(-1, 4)
        for humans in samples.humans
    ]
    return average_precision([(boxes, scores) for boxes, scores, _ in found], ground_truths)


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

    return train_detector(
        models.build(config.arch, num_classes=len(PERSON_CLASSES)),
        lambda epoch: PersonBatches(samples, config, epoch),
        config,
        resume,
        validate,
        PERSON_WEIGHTS,
        PERSON_CLASSES,
    )


def evaluate_person(
    weights: str | Path,
    split: str | Path,
    frames_per_video: int | None = None,
    max_videos: int | None = None,
) -> dict[str, float]:
    """Person AP50 of a trained detector on a split's annotated frames (all of them by default)."""
    model, input_hw, _ = load_detector(weights)
    samples = load_frame_samples(Split.open(split), frames_per_video, max_videos)
    return {"ap50": person_ap50(model, samples, input_hw)}
