"""The frame parser: persons, their poses, refined boxes, painted crops and the top-1 box per part.

Three stages, each owning one network, so a streaming element can wrap exactly one of them; the
`FrameParser` chains them for offline use and training. Every stage takes a batch of frames (from
one stream or several) and runs its network once for the whole batch.

The person and pose stages come in two kinds, picked from the network the settings name
(`person_detector`, `pose_estimator`): our YOLOF and HRNet (synthetic or users' checkpoints), or
the pretrained real networks (MoveNet MultiPose boxes, MoveNet Lightning / Thunder top-down).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models import ModelError
from models.detection import IMAGENET_RGB, Detections, ImageMeta, decode, nms, preprocess
from models.hrnet import HeatmapDecoding, decode_heatmaps, heatmaps_to_frame, unflip_heatmaps
from parsing.boxes import refine_person_box
from parsing.crops import crop_points_to_frame
from parsing.inputs import frame_tensor, normalize_batch, part_crops, pose_crops
from parsing.keypoint_parts import keypoint_parts
from parsing.networks import Network, load_network
from parsing.part_refining import PartRefinerStage
from parsing.real_models import LIGHTNING, MULTIPOSE, ROLES, THUNDER, MultiPose, Poses, SinglePose
from parsing.results import HumanResult, PartBoxes, PartResult
from parsing.settings import (
    NetworkSettings,
    ParserSettings,
    PartSettings,
    PersonSettings,
    PoseSettings,
)
from tps.scorer import inclusive_iou
from tps.vocabulary import PART_PAIRS, PARTS, part_type

NUM_KEYPOINTS = 17
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


def detect(network: Network, images: Sequence[np.ndarray], **decoding: float) -> list[Detections]:
    """Letterbox images into a YOLOF network, run it once, decode per-image `Detections`.

    Public so the training recipes validate their detectors through this very code.
    """
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
        return detect(
            self.network,
            frames_rgb,
            score_thr=self.settings.score_threshold,
            nms_iou=self.settings.nms_iou,
            max_per_image=self.settings.max_persons,
        )


def estimate_keypoints(
    network: Network,
    crops: torch.Tensor,
    crop_boxes: np.ndarray,
    *,
    flip_test: bool,
    decoding: HeatmapDecoding = "classic",
) -> np.ndarray:
    """(N, 3, h, w) 0..255 person crops -> (N, 17, 3) keypoints in frame pixels (HRNet).

    With `flip_test`, the mirrored crops run in the same call and their heatmaps, mirrored back
    with left and right swapped, are averaged in; `decoding` names the heatmap decoding
    (`models.hrnet.decode_heatmaps`). Public so the training recipes measure their
    pose networks through this very code.
    """
    normalization = getattr(network.model, "normalization", IMAGENET_RGB)
    batch = normalize_batch(crops, normalization)
    count = len(batch)
    if flip_test:
        batch = np.concatenate((batch, batch[..., ::-1]))  # 2N,3,h,w: originals, mirrored
    heatmaps = torch.from_numpy(network.run(np.ascontiguousarray(batch))["output"])
    if flip_test:
        heatmaps = (heatmaps[:count] + unflip_heatmaps(heatmaps[count:])) / 2
    keypoints_xy, scores = decode_heatmaps(heatmaps, decoding)
    frame_xy = heatmaps_to_frame(keypoints_xy, crop_boxes, tuple(heatmaps.shape[-2:]))
    return torch.cat((frame_xy, scores[..., None]), dim=-1).numpy()  # N,17,3


class PoseEstimator:
    """Stage 2: top-down pose of each person (HRNet), then the box refined around the pose."""

    def __init__(self, network: Network, settings: PoseSettings) -> None:
        self.network, self.settings = network, settings

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
            estimate_keypoints(
                self.network,
                torch.cat(crops),
                np.concatenate(crop_boxes),
                flip_test=self.settings.flip_test,
                decoding=self.settings.decoding,
            )
            if owners
            else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
        )
        owner_of = np.array(owners, dtype=np.int64)
        return [
            _persons(self.settings, frame_rgb.shape[:2], found, keypoints[owner_of == index])
            for index, (frame_rgb, found) in enumerate(zip(frames_rgb, detections, strict=True))
        ]


def _persons(
    settings: PoseSettings, frame_hw: tuple[int, int], found: Detections, keypoints: np.ndarray
) -> Persons:
    """Persons from detections and their (N, 17, 3) keypoints; boxes refined if asked."""
    boxes = found.boxes_xyxy.numpy().astype(np.float32).reshape(-1, 4)
    if settings.refine_person_boxes:
        boxes = np.array(
            [
                refine_person_box(box, person, frame_hw, min_score=settings.min_keypoint_score)
                for box, person in zip(boxes, keypoints, strict=True)
            ],
            dtype=np.float32,
        ).reshape(-1, 4)
    return Persons(boxes, found.scores.numpy(), keypoints.astype(np.float32))


class MultiPoseDetector:
    """Stage 1 on real footage: the persons of each frame from MoveNet MultiPose's boxes.

    MultiPose also gives keypoints, but the top-down single-pose stage places them better on the
    real photos of ``shared/real`` (PCK@0.2 0.80 / 0.92 / 0.93 against 0.45 / 1.0 / 0.81 on
    OCHuman / CrowdPose / AIC, ``bench/real_models_eval.py`` at commit 5f366ed), so only the boxes
    go on (the stages as built: ``python run.py eval-pose``).
    """

    def __init__(self, network: Network, settings: PersonSettings) -> None:
        self.network, self.settings = network, settings
        self.model = MultiPose(network.run, settings.input_long_side)

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[Detections]:
        """(H, W, 3) uint8 RGB frames -> person detections per frame, in frame pixels."""
        return [
            self._detections(poses)
            for poses in self.model(frames_rgb, self.settings.score_threshold)
        ]

    def _detections(self, poses: Poses) -> Detections:
        boxes, scores = torch.from_numpy(poses.boxes), torch.from_numpy(poses.scores)
        keep = nms(boxes, scores, self.settings.nms_iou)[: self.settings.max_persons]
        return Detections(boxes[keep], scores[keep], torch.zeros(len(keep), dtype=torch.int64))


class SinglePoseEstimator:
    """Stage 2 on real footage: MoveNet Lightning / Thunder top-down on each person's square crop,
    then the box refined around the pose (as `PoseEstimator`)."""

    def __init__(self, network: Network, settings: PoseSettings) -> None:
        self.network, self.settings = network, settings
        self.model = SinglePose(network.run, network.input_hw, flip_test=settings.flip_test)

    def __call__(
        self, frames_rgb: Sequence[np.ndarray], detections: Sequence[Detections]
    ) -> list[Persons]:
        """Poses of every detected person of every frame, in one network call."""
        keypoints = self.model.batch(frames_rgb, [found.boxes_xyxy.numpy() for found in detections])
        return [
            _persons(self.settings, frame_rgb.shape[:2], found, frame_keypoints)
            for frame_rgb, found, frame_keypoints in zip(
                frames_rgb, detections, keypoints, strict=True
            )
        ]


AnyPersonDetector = PersonDetector | MultiPoseDetector
AnyPoseEstimator = PoseEstimator | SinglePoseEstimator


def person_detector(network: Network, settings: PersonSettings) -> AnyPersonDetector:
    """The person stage for the network the settings name: real MultiPose or our YOLOF.

    Raises:
        ModelError: the network detects no persons (a pose network given as the person one).
    """
    if network.origin != "real":
        return PersonDetector(network, settings)
    if ROLES[network.arch] != "person":
        raise ModelError(
            f"parser.person weights {settings.weights}: {network.arch} is a {ROLES[network.arch]}"
            f" network; the person stage takes {MULTIPOSE} or a YOLOF checkpoint"
        )
    return MultiPoseDetector(network, settings)


def pose_estimator(network: Network, settings: PoseSettings) -> AnyPoseEstimator:
    """The pose stage for the network the settings name: real MoveNet or our HRNet.

    Raises:
        ModelError: the network estimates no single pose (MultiPose given as the pose one).
    """
    if network.origin != "real":
        return PoseEstimator(network, settings)
    if ROLES[network.arch] != "pose":
        raise ModelError(
            f"parser.pose weights {settings.weights}: {network.arch} is a {ROLES[network.arch]}"
            f" network; the pose stage takes {LIGHTNING}, {THUNDER} or an HRNet checkpoint"
        )
    return SinglePoseEstimator(network, settings)


class PartDetector:
    """Stage 3: the top-1 box per part of each person, by the settings' mode.

    ``detector``: the part detector (YOLOF) on each person's (painted) crop; ``keypoints``: the
    boxes `parsing.keypoint_parts` derives from the pose, no network; ``fallback``: the
    detector's boxes, and for each part it did not find with a score of at least
    ``fallback_score``, the keypoint box of that part when the pose gives one. In both detecting
    modes the part types the settings name in ``from_keypoints`` take their keypoint boxes where
    the pose gives them. With refiners (`parsing.part_refining`), the hands and feet found are
    then placed again, by each in turn. Last, a left/right pair on one spot has both its scores
    discounted (`discount_collapsed_pairs`).
    """

    def __init__(
        self,
        network: Network | None,
        settings: PartSettings,
        refiners: Sequence[Network] = (),
    ) -> None:
        """Raises ValueError: a detecting mode without a network, or a network it would not run."""
        if (network is None) == settings.uses_network:
            raise ValueError(
                f"parts mode {settings.mode!r} "
                + ("needs a part detector network" if network is None else "runs no network")
            )
        self.network, self.settings = network, settings
        self.part_names: list[str] = list(network.classes) if network is not None else list(PARTS)
        self.refiners = [PartRefinerStage(refiner) for refiner in refiners]
        self.from_keypoints = set(settings.from_keypoints)

    @classmethod
    def load(
        cls, settings: PartSettings, load: Callable[[NetworkSettings], Network] = load_network
    ) -> PartDetector:
        """The stage, with its networks loaded by `load` only where the settings run them."""
        return cls(
            load(settings) if settings.uses_network else None,
            settings,
            [load(refiner) for refiner in settings.refiners],
        )

    def __call__(self, frame_rgb: np.ndarray, persons: Persons) -> list[PartBoxes]:
        """Parts of each person of one frame, in frame pixels."""
        if len(persons.scores) == 0:
            return []
        uses_pixels = self.network is not None or bool(self.refiners)
        frame_chw = frame_tensor(frame_rgb) if uses_pixels else None
        if self.network is None:
            found = self._from_keypoints(frame_rgb, persons)
        else:
            found = self._detect(self.network, frame_chw, persons)
        if self.network is not None and (self.settings.mode == "fallback" or self.from_keypoints):
            self._take_from_keypoints(found, self._from_keypoints(frame_rgb, persons))
        for refiner in self.refiners:
            found = refiner(frame_chw, persons.boxes_xyxy, found)
        factor = self.settings.collapsed_pair_factor
        if factor < 1:
            found = [discount_collapsed_pairs(parts, factor) for parts in found]
        return found

    def _take_from_keypoints(
        self, detected: Sequence[PartBoxes], derived: Sequence[PartBoxes]
    ) -> None:
        """Put in `detected`, in place, the keypoint boxes of the `from_keypoints` types and, in
        fallback mode, of the parts the detector missed or scored under ``fallback_score``."""
        fallback = self.settings.mode == "fallback"
        floor = self.settings.fallback_score
        for found, boxes in zip(detected, derived, strict=True):
            for name, (box, score) in boxes.items():
                missed = name not in found or found[name][1] < floor
                if part_type(name) in self.from_keypoints or (fallback and missed):
                    found[name] = (box, score)

    def _from_keypoints(self, frame_rgb: np.ndarray, persons: Persons) -> list[PartBoxes]:
        return [
            keypoint_parts(
                keypoints,
                box,
                frame_rgb.shape[:2],
                min_score=self.settings.keypoint_min_score,
            )
            for box, keypoints in zip(persons.boxes_xyxy, persons.keypoints_xys, strict=True)
        ]

    def _detect(
        self, network: Network, frame_chw: torch.Tensor, persons: Persons
    ) -> list[PartBoxes]:
        input_hw = network.input_hw
        crops, crop_boxes = part_crops(
            frame_chw,
            persons.boxes_xyxy,
            persons.keypoints_xys,
            input_hw,
            paint=self.settings.paint,
            min_keypoint_score=self.settings.paint_min_score,
        )
        detections = detect(
            network,
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


COLLAPSED_PAIR_IOU = 0.5
"""A left and a right box overlapping this much lie on one part: the two sides' true boxes
rarely do (3.7% of the feet on the first 30 val videos, no hands)."""


def discount_collapsed_pairs(parts: PartBoxes, factor: float) -> PartBoxes:
    """`parts` with both scores of each left/right pair that lies on one spot multiplied by
    `factor`: one of the two boxes is on the other side's part, and which one is not known, so
    neither is as sure as a box alone."""
    discounted = dict(parts)
    for left, right in PART_PAIRS:
        if left in parts and right in parts:
            (left_box, left_score), (right_box, right_score) = parts[left], parts[right]
            overlap = inclusive_iou(np.float32(left_box), np.float32(right_box))
            if overlap >= COLLAPSED_PAIR_IOU:
                discounted[left] = (left_box, left_score * factor)
                discounted[right] = (right_box, right_score * factor)
    return discounted


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

    def __init__(
        self, person: AnyPersonDetector, pose: AnyPoseEstimator, parts: PartDetector
    ) -> None:
        self.person, self.pose, self.parts = person, pose, parts

    def __call__(self, frames_rgb: Sequence[np.ndarray]) -> list[tuple[HumanResult, ...]]:
        """Parse a batch of (H, W, 3) uint8 RGB frames; one tuple of humans per frame."""
        persons = self.pose(frames_rgb, self.person(frames_rgb))
        return [
            humans(found, self.parts(frame_rgb, found))
            for frame_rgb, found in zip(frames_rgb, persons, strict=True)
        ]

    def close(self) -> None:
        """Release the engines of the stages' networks."""
        for stage in (self.person, self.pose, self.parts):
            if stage.network is not None:
                stage.network.engine.close()


def build_frame_parser(
    settings: ParserSettings, load: Callable[[NetworkSettings], Network] = load_network
) -> FrameParser:
    """The frame stages the settings name, each on the network `load` gives for its settings.

    The stage kinds follow the networks (`person_detector`, `pose_estimator`): the same settings
    build the same stages here, in the pipeline's elements and in the benches.

    Raises:
        ModelError: a checkpoint or ONNX file does not load, or does not fit its stage.
    """
    person = person_detector(load(settings.person), settings.person)
    pose = pose_estimator(load(settings.pose), settings.pose)
    return FrameParser(person, pose, PartDetector.load(settings.parts, load))
