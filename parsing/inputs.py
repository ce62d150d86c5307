"""Network inputs of every stage, shared by the frame parser and the training recipes.

Training and inference must cut, scale and paint crops identically, or a network learns one
geometry and is served another; so both call these functions.

Frames are (H, W, 3) uint8 RGB in frame pixels; boxes (x1, y1, x2, y2) in frame pixels.
"""

from __future__ import annotations

import numpy as np
import torch

from models.detection import Normalization
from models.hrnet import crop_box_for_person
from parsing.crops import crop_and_resize, frame_points_to_crop
from parsing.painting import paint_keypoints

PART_CROP_PADDING = 1.1
"""The part detector sees the refined person box enlarged by this factor."""


def frame_tensor(frame_rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 tensor, values 0..255 (no copy of the pixels)."""
    return torch.from_numpy(np.ascontiguousarray(frame_rgb)).permute(2, 0, 1).float()


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
"""Clip frames are resized so their shorter side has this length before cropping."""


def clip_frames(
    frames_thwc: np.ndarray,
    crop_size: int,
    *,
    short_side: int = CLIP_SHORT_SIDE,
    offset_xy: tuple[int, int] | None = None,
    flip: bool = False,
) -> np.ndarray:
    """Resize a clip (shorter side -> `short_side`) and cut a square crop for the CSN.

    Args:
        frames_thwc: (T, H, W, 3) uint8 RGB frames.
        crop_size: side of the square crop (the network's input size).
        short_side: the resized shorter side (must be >= crop_size).
        offset_xy: top-left corner of the crop in the resized frames; None: centre crop
            (inference); training passes a random offset.
        flip: mirror the crop horizontally (training augmentation).

    Returns:
        (T, crop_size, crop_size, 3) uint8 RGB, ready for `models.csn.normalize_clip`.
    """
    frames = torch.from_numpy(np.ascontiguousarray(frames_thwc)).permute(0, 3, 1, 2).float()
    height, width = frames.shape[-2:]
    scale = short_side / min(height, width)
    size = (max(crop_size, round(height * scale)), max(crop_size, round(width * scale)))
    resized = torch.nn.functional.interpolate(
        frames, size=size, mode="bilinear", align_corners=False, antialias=True
    )  # T,3,h,w
    if offset_xy is None:
        offset_xy = ((size[1] - crop_size) // 2, (size[0] - crop_size) // 2)
    x, y = offset_xy
    crop = resized[:, :, y : y + crop_size, x : x + crop_size]  # T,3,s,s
    if flip:
        crop = crop.flip(-1)
    return crop.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
