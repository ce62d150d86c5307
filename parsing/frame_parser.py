"""The frame parser: persons, their poses, refined boxes, painted crops and the top-1 box per part.

Three stages, each owning one network, so a streaming element can wrap exactly one of them; the
`FrameParser` chains them for offline use and training. Every stage takes a batch of frames (from
one stream or several) and runs its network once for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.detection import IMAGENET_RGB, Detections, ImageMeta, decode, preprocess
from models.hrnet import decode_heatmaps, heatmaps_to_frame, unflip_heatmaps
from parsing.boxes import refine_person_box
from parsing.crops import crop_points_to_frame
from parsing.inputs import frame_tensor, normalize_batch, part_crops, pose_crops
from parsing.networks import Network
from parsing.results import HumanResult, PartResult
from parsing.settings import PartSettings, PersonSettings, PoseSettings

NUM_KEYPOINTS = 17
PART_NMS_IOU = 0.6
MAX_PART_CANDIDATES = 100

PartBoxes = dict[str, tuple[np.ndarray, float]]
"""One person's parts: part name -> ((4,) float32 box in frame pixels, detector score)."""


@dataclass(frozen=True)
class Persons:
    """The persons of one frame before parts are found.

    Attributes:
        boxes_xyxy: (N, 4) float32 person boxes (refined when the settings say so).
        scores: (N,) float32 detector scores.
        keypoints_xys: (N, 17, 3) float32 keypoints in frame pixels with scores.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    keypoints_xys: np.ndarray


def _detect(network: Network, images: Sequence[np.ndarray], **decoding: float) -> list[Detections]:
    """Letterbox images into a YOLOF network, run it once, decode per-image `Detections`."""
    normalization = getattr(network.model, "normalization", IMAGENET_RGB)
    batch, metas = preprocess(list(images), network.input_hw, normalization)
    return _decode(network, network.run(batch.numpy()), metas, **decoding)


def _decode(
    network: Network, outputs: dict[str, np.ndarray], metas: list[ImageMeta], **decoding: float
) -> list[Detections]:
    cls_logits, bbox_deltas = (torch.from_numpy(outputs[name]) for name in ("output_0", "output_1"))
    return decode(
        cls_logits,
        bbox_deltas,
        metas,
        anchor_sizes=network.model.anchor_sizes,
        stride=network.model.stride,
        **decoding,
    )


def top1_per_class(detections: Detections, num_classes: int) -> dict[int, tuple[np.ndarray, float]]:
    """The best box of every class present: {class index: ((4,) box, score)}."""
    best: dict[int, tuple[np.ndarray, float]] = {}
    boxes, scores, labels = (
        detections.boxes_xyxy.numpy(), detections.scores.tolist(), detections.labels.tolist()
    )  # fmt: skip
    for box, score, label in zip(boxes, scores, labels, strict=True):
        if label < num_classes and label not in best:
            best[label] = (box, score)
    return best


class PersonDetector:
    """Stage 1: the top-k persons of each frame (YOLOF)."""

    def __init__(self, network: Network, settings: PersonSettings) -> None:
        self.network, self.settings = network, settings

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[Detections]:
        """(H, W, 3) uint8 RGB frames -> person detections per frame, in frame pixels."""
        return _detect(
            self.network,
            frames_rgb,
            score_thr=self.settings.score_threshold,
            nms_iou=self.settings.nms_iou,
            max_per_image=self.settings.max_persons,
        )


class PoseEstimator:
    """Stage 2: top-down pose of each person (HRNet), then the box refined around the pose."""

    def __init__(self, network: Network, settings: PoseSettings) -> None:
        self.network, self.settings = network, settings

    def keypoints(self, crops: torch.Tensor, crop_boxes: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) 0..255 person crops -> (N, 17, 3) keypoints in frame pixels."""
        normalization = getattr(self.network.model, "normalization", IMAGENET_RGB)
        batch = normalize_batch(crops, normalization)
        count = len(batch)
        if self.settings.flip_test:
            batch = np.concatenate((batch, batch[..., ::-1]))  # 2N,3,h,w: originals, mirrored
        heatmaps = torch.from_numpy(self.network.run(np.ascontiguousarray(batch))["output"])
        if self.settings.flip_test:
            heatmaps = (heatmaps[:count] + unflip_heatmaps(heatmaps[count:])) / 2
        keypoints_xy, scores = decode_heatmaps(heatmaps)
        frame_xy = heatmaps_to_frame(keypoints_xy, crop_boxes, tuple(heatmaps.shape[-2:]))
        return torch.cat((frame_xy, scores[..., None]), dim=-1).numpy()  # N,17,3

    def __call__(
        self, frames_rgb: Sequence[np.ndarray], detections: Sequence[Detections]
    ) -> list[Persons]:
        """Poses of every detected person of every frame, in one network call."""
        crops, crop_boxes, owners = [], [], []
        for index, (frame_rgb, found) in enumerate(zip(frames_rgb, detections, strict=True)):
            if len(found):
                frame_crops, frame_boxes = pose_crops(
                    frame_tensor(frame_rgb), found.boxes_xyxy.numpy(), self.network.input_hw
                )
                crops.append(frame_crops)
                crop_boxes.append(frame_boxes)
                owners += [index] * len(found)
        keypoints = (
            self.keypoints(torch.cat(crops), np.concatenate(crop_boxes))
            if owners
            else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
        )
        owner_of = np.array(owners, dtype=np.int64)
        return [
            self._persons(frame_rgb.shape[:2], found, keypoints[owner_of == index])
            for index, (frame_rgb, found) in enumerate(zip(frames_rgb, detections, strict=True))
        ]

    def _persons(
        self, frame_hw: tuple[int, int], found: Detections, keypoints: np.ndarray
    ) -> Persons:
        boxes = found.boxes_xyxy.numpy().astype(np.float32).reshape(-1, 4)
        if self.settings.refine_person_boxes:
            min_score = self.settings.min_keypoint_score
            boxes = np.array(
                [
                    refine_person_box(box, person, frame_hw, min_score=min_score)
                    for box, person in zip(boxes, keypoints, strict=True)
                ],
                dtype=np.float32,
            ).reshape(-1, 4)
        return Persons(boxes, found.scores.numpy(), keypoints.astype(np.float32))


class PartDetector:
    """Stage 3: the top-1 box per part on each person's (painted) crop (YOLOF)."""

    def __init__(self, network: Network, settings: PartSettings) -> None:
        self.network, self.settings = network, settings
        self.part_names: list[str] = list(network.classes)

    def __call__(self, frame_rgb: np.ndarray, persons: Persons) -> list[PartBoxes]:
        """Parts of each person of one frame, in frame pixels."""
        if len(persons.scores) == 0:
            return []
        input_hw = self.network.input_hw
        crops, crop_boxes = part_crops(
            frame_tensor(frame_rgb),
            persons.boxes_xyxy,
            persons.keypoints_xys,
            input_hw,
            paint=self.settings.paint,
            min_keypoint_score=self.settings.paint_min_score,
        )
        detections = _detect(
            self.network,
            crops,
            score_thr=self.settings.score_threshold,
            nms_iou=PART_NMS_IOU,
            max_per_image=MAX_PART_CANDIDATES,
        )
        found = []
        for person_detections, crop_box in zip(detections, crop_boxes, strict=True):
            best = top1_per_class(person_detections, len(self.part_names))
            found.append(
                {
                    self.part_names[label]: (
                        crop_points_to_frame(box.reshape(2, 2), crop_box, input_hw).reshape(4),
                        score,
                    )
                    for label, (box, score) in best.items()
                }
            )
        return found


def humans(persons: Persons, parts: Sequence[PartBoxes]) -> tuple[HumanResult, ...]:
    """Result objects for the persons of one frame and their parts (states not yet known)."""
    return tuple(
        HumanResult(
            box=tuple(box.tolist()),
            score=float(score),
            keypoints=tuple(map(tuple, keypoints.tolist())),
            parts={
                name: PartResult(box=tuple(part_box.tolist()), score=float(part_score))
                for name, (part_box, part_score) in person_parts.items()
            },
        )
        for box, score, keypoints, person_parts in zip(
            persons.boxes_xyxy, persons.scores, persons.keypoints_xys, parts, strict=True
        )
    )


class FrameParser:
    """Persons -> poses -> refined boxes -> painted crops -> parts, for a batch of frames."""

    def __init__(self, person: PersonDetector, pose: PoseEstimator, parts: PartDetector) -> None:
        self.person, self.pose, self.parts = person, pose, parts

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[tuple[HumanResult, ...]]:
        """Parse a batch of (H, W, 3) uint8 RGB frames; one tuple of humans per frame."""
        persons = self.pose(frames_rgb, self.person(frames_rgb))
        return [
            humans(found, self.parts(frame_rgb, found))
            for frame_rgb, found in zip(frames_rgb, persons, strict=True)
        ]
