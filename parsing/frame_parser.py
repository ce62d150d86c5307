"""The frame parser: persons, their poses, refined boxes, painted crops and the top-1 box per part.

One call parses a batch of frames (from one stream or several): each stage runs once for the
whole batch, so a micro-batcher or a GPU sees few large calls rather than many small ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.detection import IMAGENET_RGB, Detections, decode, preprocess
from models.hrnet import decode_heatmaps, heatmaps_to_frame, unflip_heatmaps
from parsing.boxes import refine_person_box
from parsing.crops import crop_points_to_frame
from parsing.inputs import frame_tensor, normalize_batch, part_crops, pose_crops
from parsing.networks import Network
from parsing.results import HumanResult, PartResult
from parsing.settings import PartSettings, PersonSettings, PoseSettings

PART_NMS_IOU = 0.6
MAX_PART_CANDIDATES = 100


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


def _detections(network: Network, batch: np.ndarray, metas: list, **decoding: float) -> list:
    """Run a YOLOF network and decode its maps into per-image `Detections`."""
    outputs = network.run(batch)
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
    for box, score, label in zip(
        detections.boxes_xyxy.numpy(), detections.scores.tolist(), detections.labels.tolist(),
        strict=True,
    ):  # fmt: skip
        if label < num_classes and label not in best:
            best[label] = (box, score)
    return best


class FrameParser:
    """Persons -> poses -> refined boxes -> painted crops -> parts, for a batch of frames."""

    def __init__(
        self,
        person: Network,
        pose: Network,
        parts: Network,
        person_settings: PersonSettings,
        pose_settings: PoseSettings,
        part_settings: PartSettings,
    ) -> None:
        self.person, self.pose, self.parts = person, pose, parts
        self.person_settings = person_settings
        self.pose_settings = pose_settings
        self.part_settings = part_settings
        self.part_names: list[str] = list(parts.classes)

    def detect_persons(self, frames_rgb: Sequence[np.ndarray]) -> list[Detections]:
        """Top-k person detections per frame, in frame pixels."""
        normalization = getattr(self.person.model, "normalization", IMAGENET_RGB)
        batch, metas = preprocess(list(frames_rgb), self.person.input_hw, normalization)
        settings = self.person_settings
        return _detections(
            self.person,
            batch.numpy(),
            metas,
            score_thr=settings.score_threshold,
            nms_iou=settings.nms_iou,
            max_per_image=settings.max_persons,
        )

    def estimate_poses(self, crops: torch.Tensor, crop_boxes: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) 0..255 person crops -> (N, 17, 3) keypoints in frame pixels."""
        normalization = getattr(self.pose.model, "normalization", IMAGENET_RGB)
        batch = normalize_batch(crops, normalization)
        count = len(batch)
        if self.pose_settings.flip_test:
            batch = np.concatenate((batch, batch[..., ::-1]))  # 2N,3,h,w: originals, mirrored
        heatmaps = torch.from_numpy(self.pose.run(np.ascontiguousarray(batch))["output"])
        if self.pose_settings.flip_test:
            heatmaps = (heatmaps[:count] + unflip_heatmaps(heatmaps[count:])) / 2
        keypoints_xy, scores = decode_heatmaps(heatmaps)
        frame_xy = heatmaps_to_frame(keypoints_xy, crop_boxes, tuple(heatmaps.shape[-2:]))
        return torch.cat((frame_xy, scores[..., None]), dim=-1).numpy()  # N,17,3

    def find_parts(
        self, frame: torch.Tensor, persons: Persons
    ) -> list[dict[str, tuple[np.ndarray, float]]]:
        """Top-1 box per part for each person: [{part name: ((4,) frame box, score)}]."""
        settings = self.part_settings
        crops, crop_boxes = part_crops(
            frame,
            persons.boxes_xyxy,
            persons.keypoints_xys,
            self.parts.input_hw,
            paint=settings.paint,
            min_keypoint_score=self.pose_settings.min_keypoint_score,
        )
        normalization = getattr(self.parts.model, "normalization", IMAGENET_RGB)
        batch, metas = preprocess(list(crops), self.parts.input_hw, normalization)
        detections = _detections(
            self.parts,
            batch.numpy(),
            metas,
            score_thr=settings.score_threshold,
            nms_iou=PART_NMS_IOU,
            max_per_image=MAX_PART_CANDIDATES,
        )
        found = []
        for person_detections, crop_box in zip(detections, crop_boxes, strict=True):
            best = top1_per_class(person_detections, len(self.part_names))
            found.append(
                {
                    self.part_names[label]: (
                        crop_points_to_frame(box.reshape(2, 2), crop_box, self.parts.input_hw)
                        .reshape(4)
                        .astype(np.float32),
                        score,
                    )
                    for label, (box, score) in best.items()
                }
            )
        return found

    def parse(self, frames_rgb: Sequence[np.ndarray]) -> list[tuple[HumanResult, ...]]:
        """Parse a batch of (H, W, 3) uint8 RGB frames; one tuple of humans per frame."""
        detections = self.detect_persons(frames_rgb)
        tensors = [frame_tensor(frame) for frame in frames_rgb]
        crops, crop_boxes, owners = [], [], []
        for index, (frame, found) in enumerate(zip(tensors, detections, strict=True)):
            if len(found):
                frame_crops, frame_boxes = pose_crops(
                    frame, found.boxes_xyxy.numpy(), self.pose.input_hw
                )
                crops.append(frame_crops)
                crop_boxes.append(frame_boxes)
                owners += [index] * len(found)
        if not owners:
            return [() for _ in frames_rgb]
        keypoints = self.estimate_poses(torch.cat(crops), np.concatenate(crop_boxes))
        owners_array = np.array(owners)
        results = []
        for index, (frame_rgb, frame, found) in enumerate(
            zip(frames_rgb, tensors, detections, strict=True)
        ):
            persons = self._persons(frame_rgb.shape[:2], found, keypoints[owners_array == index])
            if len(persons.scores) == 0:
                results.append(())
                continue
            parts = self.find_parts(frame, persons)
            results.append(self._humans(persons, parts))
        return results

    def _persons(
        self, frame_hw: tuple[int, int], found: Detections, keypoints: np.ndarray
    ) -> Persons:
        boxes = found.boxes_xyxy.numpy().astype(np.float32)
        if self.pose_settings.refine_person_boxes:
            boxes = (
                np.stack(
                    [
                        refine_person_box(
                            box,
                            person_keypoints,
                            frame_hw,
                            min_score=self.pose_settings.min_keypoint_score,
                        )
                        for box, person_keypoints in zip(boxes, keypoints, strict=True)
                    ]
                )
                if len(boxes)
                else boxes
            )
        return Persons(boxes, found.scores.numpy(), keypoints.astype(np.float32))

    @staticmethod
    def _humans(
        persons: Persons, parts: list[dict[str, tuple[np.ndarray, float]]]
    ) -> tuple[HumanResult, ...]:
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
