"""Batched crop-and-resize of boxes from a frame, and the mapping of crop points back to the frame.

Convention: pixel centres sit at integer coordinates, and a crop box (x1, y1, x2, y2) is a
continuous rectangle; output pixel (row i, column j) of an (h, w) crop samples the frame at
x = x1 + (j + 0.5) * (x2 - x1) / w, y = y1 + (i + 0.5) * (y2 - y1) / h (bilinear, zeros outside).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def crop_and_resize(
    frame_chw: torch.Tensor, boxes_xyxy: np.ndarray, out_hw: tuple[int, int]
) -> torch.Tensor:
    """Sample one (C, h, w) crop per box from a frame, all in one `grid_sample` call.

    Args:
        frame_chw: (C, H, W) float tensor.
        boxes_xyxy: (N, 4) crop boxes in frame pixels.
        out_hw: (h, w) size of every crop.

    Returns:
        (N, C, h, w) float tensor; parts of a box outside the frame are zeros.
    """
    channels, height, width = frame_chw.shape
    out_h, out_w = out_hw
    boxes = torch.as_tensor(np.asarray(boxes_xyxy, dtype=np.float32)).reshape(-1, 4)
    count = boxes.shape[0]
    if count == 0:
        return frame_chw.new_zeros((0, channels, out_h, out_w))
    steps_x = (torch.arange(out_w, dtype=torch.float32) + 0.5) / out_w  # (w,)
    steps_y = (torch.arange(out_h, dtype=torch.float32) + 0.5) / out_h  # (h,)
    xs = boxes[:, 0:1] + steps_x[None] * (boxes[:, 2:3] - boxes[:, 0:1])  # (N, w) frame x
    ys = boxes[:, 1:2] + steps_y[None] * (boxes[:, 3:4] - boxes[:, 1:2])  # (N, h) frame y
    grid_x = (xs + 0.5) / width * 2 - 1  # align_corners=False normalisation
    grid_y = (ys + 0.5) / height * 2 - 1
    shape = (count, out_h, out_w)
    grid = torch.stack((grid_x[:, None, :].expand(shape), grid_y[:, :, None].expand(shape)), dim=-1)
    # grid: (N, h, w, 2)
    frames = frame_chw.to(torch.float32)[None].expand(count, channels, height, width)
    return F.grid_sample(frames, grid.to(frames.dtype), mode="bilinear", align_corners=False)


def crop_points_to_frame(
    points_xy: np.ndarray, box_xyxy: np.ndarray, crop_hw: tuple[int, int]
) -> np.ndarray:
    """Map (..., 2) points from an (h, w) crop's pixel frame back to frame pixels."""
    out_h, out_w = crop_hw
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    mapped = np.empty_like(points_xy, dtype=np.float32)
    mapped[..., 0] = x1 + (points_xy[..., 0] + 0.5) * (x2 - x1) / out_w
    mapped[..., 1] = y1 + (points_xy[..., 1] + 0.5) * (y2 - y1) / out_h
    return mapped


def frame_points_to_crop(
    points_xy: np.ndarray, box_xyxy: np.ndarray, crop_hw: tuple[int, int]
) -> np.ndarray:
    """Map (..., 2) points from frame pixels into an (h, w) crop's pixel frame (the inverse)."""
    out_h, out_w = crop_hw
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    mapped = np.empty_like(points_xy, dtype=np.float32)
    mapped[..., 0] = (points_xy[..., 0] - x1) * out_w / max(x2 - x1, 1e-6) - 0.5
    mapped[..., 1] = (points_xy[..., 1] - y1) * out_h / max(y2 - y1, 1e-6) - 0.5
    return mapped
