"""Network inputs of every stage, shared by the frame parser and the training recipes.

Training and inference must cut, scale and paint crops identically, or a network learns one
geometry and is served another; so both call these functions.

Frames are (H, W, 3) uint8 RGB in frame pixels; boxes (x1, y1, x2, y2) in frame pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.detection import Normalization
from models.hrnet import crop_box_for_person
from parsing.crops import crop_and_resize, frame_points_to_crop
from parsing.painting import paint_keypoints

PART_CROP_PADDING = 1.1
"""The part detector sees the refined person box enlarged by this factor."""


def frame_tensor(frame_rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 tensor, values 0..255."""
    pixels = np.ascontiguousarray(frame_rgb)
    if not pixels.flags.writeable:
        pixels = pixels.copy()  # a read-only buffer view; torch wants writable memory
    return torch.from_numpy(pixels).permute(2, 0, 1).float()


def normalize_batch(crops_nchw: torch.Tensor, normalization: Normalization) -> np.ndarray:
    """(N, 3, H, W) 0..255 RGB -> (N, 3, H, W) float32 normalised for a network, as numpy."""
    if normalization.channel_order == "bgr":
        crops_nchw = crops_nchw.flip(1)  # N,3,H,W BGR
    mean = torch.tensor(normalization.mean).view(1, 3, 1, 1)
    std = torch.tensor(normalization.std).view(1, 3, 1, 1)
    return ((crops_nchw - mean) / std).numpy().astype(np.float32, copy=False)


def pose_crop_boxes(person_boxes_xyxy: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) person boxes -> (N, 4) top-down crop boxes with the pose input's aspect ratio."""
    height, width = input_hw
    return crop_box_for_person(np.reshape(person_boxes_xyxy, (-1, 4)), aspect=width / height)


def pose_crops(
    frame: torch.Tensor, person_boxes_xyxy: np.ndarray, input_hw: tuple[int, int]
) -> tuple[torch.Tensor, np.ndarray]:
    """Person crops for the pose network.

    Args:
        frame: (3, H, W) float tensor from `frame_tensor`.
        person_boxes_xyxy: (N, 4) person boxes.
        input_hw: the pose network's input size.

    Returns:
        (N, 3, h, w) 0..255 crops and their (N, 4) crop boxes (to map heatmaps back).
    """
    crop_boxes = pose_crop_boxes(person_boxes_xyxy, input_hw)
    return crop_and_resize(frame, crop_boxes, input_hw), crop_boxes


def part_crop_boxes(person_boxes_xyxy: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """(N, 4) refined person boxes -> (N, 4) crop boxes with the part input's aspect ratio."""
    height, width = input_hw
    return crop_box_for_person(
        np.reshape(person_boxes_xyxy, (-1, 4)), aspect=width / height, padding=PART_CROP_PADDING
    )


def part_crops(
    frame: torch.Tensor,
    person_boxes_xyxy: np.ndarray,
    keypoints_xys: np.ndarray | None,
    input_hw: tuple[int, int],
    *,
    paint: bool = True,
    min_keypoint_score: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Painted person crops for the part detector (the report's pose-guided part detection).

    Args:
        frame: (3, H, W) float tensor from `frame_tensor`.
        person_boxes_xyxy: (N, 4) refined person boxes.
        keypoints_xys: (N, 17, 3) keypoints in frame pixels with scores; None or `paint=False`
            leaves the crops unpainted (the ablation without pose guidance).
        input_hw: the part detector's input size.
        paint: draw the keypoints as coloured dots.
        min_keypoint_score: keypoints below this score are not drawn.

    Returns:
        (N, h, w, 3) uint8 RGB crops and their (N, 4) crop boxes in frame pixels.
    """
    crop_boxes = part_crop_boxes(person_boxes_xyxy, input_hw)
    crops = crop_and_resize(frame, crop_boxes, input_hw)  # N,3,h,w
    crops_nhwc = crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if not paint or keypoints_xys is None:
        return np.ascontiguousarray(crops_nhwc), crop_boxes
    painted = np.empty_like(crops_nhwc)
    for index, (crop, box, keypoints) in enumerate(
        zip(crops_nhwc, crop_boxes, keypoints_xys, strict=True)
    ):
        in_crop = keypoints.copy()
        in_crop[:, :2] = frame_points_to_crop(keypoints[:, :2], box, input_hw)
        painted[index] = paint_keypoints(crop, in_crop, min_score=min_keypoint_score)
    return painted, crop_boxes


CLIP_SHORT_SIDE = 128
"""Default shorter side clip frames are resized to before the square crop."""


def resize_short_side(frames_thwc: np.ndarray, short_side: int) -> np.ndarray:
    """Resize frames so their shorter side is `short_side`, keeping the aspect ratio.

    Args:
        frames_thwc: (T, H, W, 3) uint8 RGB frames.
        short_side: target length of the shorter side in pixels.

    Returns:
        (T, h, w, 3) uint8 RGB with min(h, w) == short_side (bilinear, antialiased).
    """
    _, height, width, _ = frames_thwc.shape
    ratio = short_side / min(height, width)
    size = (max(short_side, round(height * ratio)), max(short_side, round(width * ratio)))
    if size == (height, width):
        return np.ascontiguousarray(frames_thwc)
    # torch resizes uint8 directly (a fast kernel that rounds), no float round trip
    pixels = np.ascontiguousarray(frames_thwc)
    if not pixels.flags.writeable:
        pixels = pixels.copy()  # a read-only buffer view; torch wants writable memory
    values = torch.from_numpy(pixels).permute(0, 3, 1, 2)  # T,3,H,W
    resized = F.interpolate(values, size=size, mode="bilinear", antialias=True)  # T,3,h,w
    return np.ascontiguousarray(resized.permute(0, 2, 3, 1).numpy())  # T,h,w,3


def centre_crop(frames_thwc: np.ndarray, size: int) -> np.ndarray:
    """The central (T, size, size, 3) window of (T, H, W, 3) frames (H, W >= size)."""
    _, height, width, _ = frames_thwc.shape
    top, left = (height - size) // 2, (width - size) // 2
    return frames_thwc[:, top : top + size, left : left + size]


def clip_frames(
    frames_thwc: np.ndarray, size: int = 112, short_side: int = CLIP_SHORT_SIDE
) -> np.ndarray:
    """A clip's frames as the network sees them at test time: shorter side, then centre crop.

    Args:
        frames_thwc: (T, H, W, 3) uint8 RGB frames of one clip, at any resolution.
        size: side of the square crop (the network's input H = W).
        short_side: the shorter side the frames are resized to first.

    Returns:
        (T, size, size, 3) uint8 RGB; feed it to `models.csn.normalize_clip`.
    """
    return np.ascontiguousarray(centre_crop(resize_short_side(frames_thwc, short_side), size))


def random_crop_flip(
    frames_thwc: np.ndarray, size: int, flip_prob: float, rng: np.random.Generator
) -> np.ndarray:
    """Training augmentation: one random (size, size) window for the clip, mirrored sometimes."""
    _, height, width, _ = frames_thwc.shape
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    crop = frames_thwc[:, top : top + size, left : left + size]
    if rng.random() < flip_prob:
        crop = crop[:, :, ::-1]
    return np.ascontiguousarray(crop)


PERSON_CLIP_PADDING = 1.2
"""A person clip sees a square around the person box, this much larger than its longer side."""


def person_clip_boxes(person_boxes_xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) person boxes -> (N, 4) squares around their centres (person-centred clips)."""
    boxes = np.asarray(person_boxes_xyxy, dtype=np.float32).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(axis=1, keepdims=True) * PERSON_CLIP_PADDING / 2
    return np.concatenate((centre - half, centre + half), axis=1)


def person_clip_crops(
    frame_rgb: np.ndarray, person_boxes_xyxy: np.ndarray, size: int
) -> np.ndarray:
    """(N, size, size, 3) uint8 RGB person-centred crops of one frame for the CSN."""
    crops = crop_and_resize(
        frame_tensor(frame_rgb), person_clip_boxes(person_boxes_xyxy), (size, size)
    )  # N,3,S,S
    return crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
