"""Real annotated people (COCO-format keypoint sets) and how well persons and poses are found.

The sets are the folders of ``../shared/real``: each holds photographs and one JSON file, either
COCO format (``images``, ``annotations`` with ``bbox`` = x, y, w, h and flat ``keypoints``
x, y, v; keypoint names in ``categories[0].keypoints``) or MPII's list (``image``, ``joints``,
``joints_vis``, ``center``, ``scale``). Keypoints are mapped to COCO-17 by name (CrowdPose's
``left_shoulder``, AI Challenger's ``Left Shoulder``, MPII's fixed order); joints with no COCO-17
counterpart (head top, neck, thorax, pelvis) are left out.

A person counts as annotated when it is not a crowd region and has at least one labelled keypoint
(v > 0) with a COCO-17 counterpart. MPII gives a centre and a scale instead of a box; its box here
is the box of the labelled joints, enlarged ``MPII_BOX_PAD`` times about its centre (head top to
ankles, so about the extent a detector's box has).

Metrics, per folder:
- recall: annotated people matched one-to-one to predicted boxes (Hungarian method on IoU,
  continuous coordinates) with IoU >= ``MATCH_IOU``;
- PCK: labelled keypoints predicted within ``PCK_FRACTION`` of the annotated box diagonal, over
  every annotated person (an unmatched person's keypoints are misses), and over matched people only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from parsing.real_models import COCO17
from parsing.tracker import iou_matrix

MATCH_IOU = 0.5
PCK_FRACTION = 0.2
MPII_BOX_PAD = 1.2
MPII_KEYPOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
    "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip
"""MPII's 16 joints in annotation order (its JSON names none)."""


class PoseSetError(Exception):
    """An annotated set is missing, unreadable or not in a format read here."""


@dataclass(frozen=True)
class AnnotatedPerson:
    """One annotated person.

    Attributes:
        box_xyxy: (4,) float32 x1, y1, x2, y2 in image pixels.
        keypoints_xyv: (17, 3) float32 COCO-17 x, y, v; v > 0 marks a labelled keypoint, v = 0 one
            that is unlabelled or has no counterpart in the set's own keypoints.
    """

    box_xyxy: np.ndarray
    keypoints_xyv: np.ndarray


@dataclass(frozen=True)
class AnnotatedImage:
    """An image file and its annotated people."""

    path: Path
    people: tuple[AnnotatedPerson, ...]


def coco17_index(names: Sequence[str]) -> np.ndarray:
    """(K,) int64: the COCO-17 index of each named keypoint, -1 where there is none.

    Names compare lower-case with spaces as underscores (``Left Shoulder`` is ``left_shoulder``).
    """
    normal = [name.strip().lower().replace(" ", "_") for name in names]
    return np.array([COCO17.index(n) if n in COCO17 else -1 for n in normal], np.int64)


def to_coco17(keypoints_xyv: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(K, 3) keypoints in a set's order -> (17, 3) COCO-17 order (v = 0 where none maps)."""
    out = np.zeros((len(COCO17), 3), np.float32)
    mapped = index >= 0
    out[index[mapped]] = keypoints_xyv[mapped]
    out[out[:, 2] <= 0] = 0
    return out


def _fail(path: Path, what: str) -> PoseSetError:
    return PoseSetError(f"{path}: {what}")


def _keypoints(value: object, count: int, path: Path, where: str) -> np.ndarray:
    try:
        keypoints = np.asarray(value, np.float32).reshape(count, 3)
    except (TypeError, ValueError) as error:
        raise _fail(path, f"{where}: expected {count} x (x, y, v) keypoints") from error
    return keypoints


def read_coco(path: Path) -> list[AnnotatedImage]:
    """A COCO-format keypoint file -> its images with their annotated people.

    Raises:
        PoseSetError: the file is unreadable, or a key the format needs is missing or malformed.
    """
    data = _load_json(path)
    try:
        names = data["categories"][0]["keypoints"]
        images = {image["id"]: image["file_name"] for image in data["images"]}
        annotations = data["annotations"]
    except (KeyError, IndexError, TypeError) as error:
        raise _fail(path, f"not COCO keypoint format (missing {error})") from error
    index = coco17_index(names)
    people: dict[object, list[AnnotatedPerson]] = {image_id: [] for image_id in images}
    for number, annotation in enumerate(annotations):
        where = f"annotations.{number}"
        try:
            image_id, (x, y, w, h) = annotation["image_id"], annotation["bbox"]
            raw = annotation["keypoints"]
        except (KeyError, TypeError, ValueError) as error:
            raise _fail(path, f"{where}: needs image_id, bbox [x, y, w, h], keypoints") from error
        if image_id not in people:
            raise _fail(path, f"{where}: image_id {image_id!r} is not in images")
        keypoints = to_coco17(_keypoints(raw, len(index), path, where), index)
        if annotation.get("iscrowd") or not (keypoints[:, 2] > 0).any():
            continue
        box = np.array([x, y, x + w, y + h], np.float32)
        people[image_id].append(AnnotatedPerson(box, keypoints))
    return [
        AnnotatedImage(path.parent / name, tuple(people[image_id]))
        for image_id, name in images.items()
    ]


def keypoint_box(keypoints_xyv: np.ndarray, pad: float) -> np.ndarray:
    """(4,) float32 box of the labelled keypoints, scaled ``pad`` times about its centre."""
    xy = keypoints_xyv[keypoints_xyv[:, 2] > 0, :2]
    low, high = xy.min(axis=0), xy.max(axis=0)
    centre, half = (low + high) / 2, (high - low) * pad / 2
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def read_mpii(path: Path) -> list[AnnotatedImage]:
    """MPII's annotation list -> images with people; boxes from the joints (``keypoint_box``).

    Raises:
        PoseSetError: the file is unreadable, or an entry lacks ``image``, ``joints``,
            ``joints_vis`` of 16 each.
    """
    data = _load_json(path)
    if not isinstance(data, list):
        raise _fail(path, "not an MPII annotation list")
    index = coco17_index(MPII_KEYPOINTS)
    people: dict[str, list[AnnotatedPerson]] = {}
    for number, entry in enumerate(data):
        where = f"entry {number}"
        try:
            name = entry["image"]
            joints = np.asarray(entry["joints"], np.float32).reshape(len(MPII_KEYPOINTS), 2)
            visible = np.asarray(entry["joints_vis"], np.float32).reshape(len(MPII_KEYPOINTS), 1)
        except (KeyError, TypeError, ValueError) as error:
            raise _fail(path, f"{where}: needs image and 16 joints and joints_vis") from error
        keypoints = to_coco17(np.concatenate([joints, (visible > 0) * 2.0], axis=1), index)
        found = people.setdefault(name, [])
        if (keypoints[:, 2] > 0).any():
            box = keypoint_box(np.concatenate([joints, visible], axis=1), MPII_BOX_PAD)
            found.append(AnnotatedPerson(box, keypoints))
    return [AnnotatedImage(path.parent / name, tuple(found)) for name, found in people.items()]


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise _fail(path, f"cannot read annotations ({error.strerror})") from error
    except json.JSONDecodeError as error:
        raise _fail(path, f"not valid JSON (line {error.lineno})") from error


def read_folder(folder: Path) -> list[AnnotatedImage]:
    """The one annotation JSON of a folder (COCO format, or MPII's list), read.

    Raises:
        PoseSetError: the folder has no JSON file or more than one, or it cannot be read.
    """
    files = sorted(Path(folder).glob("*.json"))
    if len(files) != 1:
        raise _fail(Path(folder), f"expected one annotation .json, found {len(files)}")
    return read_mpii(files[0]) if isinstance(_load_json(files[0]), list) else read_coco(files[0])


def read_sets(root: Path) -> dict[str, list[AnnotatedImage]]:
    """Every annotated folder under ``root`` by folder name (sorted).

    Raises:
        PoseSetError: ``root`` is not a folder or holds no folder with annotations.
    """
    root = Path(root)
    if not root.is_dir():
        raise _fail(root, "not a folder of annotated sets")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*.json")))
    if not folders:
        raise _fail(root, "no folder with an annotation .json")
    return {folder.name: read_folder(folder) for folder in folders}


def match_people(
    gt_boxes_xyxy: np.ndarray, pred_boxes_xyxy: np.ndarray, min_iou: float = MATCH_IOU
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches with IoU >= ``min_iou``, the total IoU of the assignment maximal.

    Returns:
        (gt_indices, pred_indices): int64 arrays of the kept pairs, in GT order.
    """
    iou = iou_matrix(gt_boxes_xyxy, pred_boxes_xyxy)
    rows, cols = linear_sum_assignment(iou, maximize=True)
    kept = iou[rows, cols] >= min_iou
    return rows[kept].astype(np.int64), cols[kept].astype(np.int64)


def keypoint_hits(
    person: AnnotatedPerson, keypoints_xy: np.ndarray, fraction: float = PCK_FRACTION
) -> tuple[int, int]:
    """(hits, labelled) of one person: predicted (17, 2) points within ``fraction`` of the
    annotated box diagonal of the labelled COCO-17 keypoints."""
    labelled = person.keypoints_xyv[:, 2] > 0
    x1, y1, x2, y2 = person.box_xyxy
    reach = fraction * float(np.hypot(x2 - x1, y2 - y1))
    distance = np.linalg.norm(keypoints_xy[labelled] - person.keypoints_xyv[labelled, :2], axis=1)
    return int((distance <= reach).sum()), int(labelled.sum())


@dataclass
class PoseScore:
    """Counts over images; the rates are ratios of them."""

    images: int = 0
    people: int = 0
    found: int = 0
    keypoints: int = 0
    hits: int = 0
    matched_keypoints: int = 0
    predicted: int = 0
    seconds: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        """Annotated people found at IoU >= ``MATCH_IOU``."""
        return self.found / self.people if self.people else 0.0

    @property
    def pck(self) -> float:
        """Labelled keypoints hit, over all annotated people (unmatched ones miss every point)."""
        return self.hits / self.keypoints if self.keypoints else 0.0

    @property
    def pck_matched(self) -> float:
        """Labelled keypoints hit, over matched people only."""
        return self.hits / self.matched_keypoints if self.matched_keypoints else 0.0

    def add_image(
        self,
        people: Sequence[AnnotatedPerson],
        boxes_xyxy: np.ndarray,
        keypoints_xys: np.ndarray,
        seconds: float,
    ) -> None:
        """Count one image: its annotations against predicted (N, 4) boxes, (N, 17, 2+) points."""
        self.images += 1
        self.seconds.append(seconds)
        self.predicted += len(boxes_xyxy)
        self.people += len(people)
        labelled = [int((person.keypoints_xyv[:, 2] > 0).sum()) for person in people]
        self.keypoints += sum(labelled)
        if not people or not len(boxes_xyxy):
            return
        gt_boxes = np.stack([person.box_xyxy for person in people])
        for g, p in zip(*match_people(gt_boxes, np.asarray(boxes_xyxy)), strict=True):
            hits, count = keypoint_hits(people[g], np.asarray(keypoints_xys)[p, :, :2])
            self.found += 1
            self.hits += hits
            self.matched_keypoints += count

    def __add__(self, other: PoseScore) -> PoseScore:
        """Counts of both (the score of all their images)."""
        return PoseScore(
            images=self.images + other.images,
            people=self.people + other.people,
            found=self.found + other.found,
            keypoints=self.keypoints + other.keypoints,
            hits=self.hits + other.hits,
            matched_keypoints=self.matched_keypoints + other.matched_keypoints,
            predicted=self.predicted + other.predicted,
            seconds=self.seconds + other.seconds,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Counts, rates and the median milliseconds per image, for JSON."""
        return {
            "images": self.images,
            "people": self.people,
            "found": self.found,
            "recall": round(self.recall, 4),
            "keypoints": self.keypoints,
            "hits": self.hits,
            "pck": round(self.pck, 4),
            "matched_keypoints": self.matched_keypoints,
            "pck_matched": round(self.pck_matched, 4),
            "predicted": self.predicted,
            "ms_per_image": round(1000 * float(np.median(self.seconds)), 1) if self.seconds else 0,
        }


PersonPose = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Person and pose stages on one (H, W, 3) uint8 RGB image -> (N, 4) boxes, (N, 17, 3) x, y, s."""


def load_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file.

    Raises:
        PoseSetError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise _fail(Path(path), f"cannot read image ({error})") from error


def score_sets(
    person_pose: PersonPose, sets: Mapping[str, Sequence[AnnotatedImage]]
) -> dict[str, PoseScore]:
    """Run ``person_pose`` on every image of every set; a `PoseScore` per set name.

    The time counted per image is the call alone (the image is read before).
    """
    scores = {}
    for name, images in sets.items():
        score = PoseScore()
        for image in images:
            frame_rgb = load_rgb(image.path)
            start = time.perf_counter()
            boxes_xyxy, keypoints_xys = person_pose(frame_rgb)
            score.add_image(image.people, boxes_xyxy, keypoints_xys, time.perf_counter() - start)
        scores[name] = score
    return scores
