"""YOLOF pre- and post-processing: letterbox, anchors, box coding, NMS and decoding (pure torch).

The detector network returns raw maps only (so it exports to ONNX cleanly); everything around it
lives here, shared by inference and training:

* `preprocess` resizes each image keeping its aspect ratio to fit the network input, pads at the
  bottom and right (as mmdet's ``Pad`` does, so the image keeps the top-left origin the anchors were
  trained with) and normalises. Images come in as H,W,3 uint8 **RGB**; the default normalisation is
  ImageNet mean/std in RGB order (torchvision / mmdet ``style='pytorch'`` models, and every model we
  train). `CAFFE_BGR` reproduces mmdet's caffe-style YOLOF configs (BGR, mean only, std 1).
* `anchor_grid` places mmdet's ``AnchorGenerator(ratios=[1.0], scales=[1, 2, 4, 8, 16],
  strides=[32])`` anchors: square boxes of sizes 32..512 centred on ``(x * 32, y * 32)`` (mmdet's
  ``center_offset=0``), ordered location-major, anchor-minor.
* `encode_deltas` / `decode_deltas` are ``DeltaXYWHBBoxCoder`` with means 0, stds 1 and YOLOF's
  ``add_ctr_clamp=True, ctr_clamp=32``.
* `decode` turns the maps into per-image `Detections` in original image pixels (x1, y1, x2, y2).

Boxes are continuous pixel coordinates: width is ``x2 - x1`` (no +1), as in mmdet 2.x and later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from models.registry import ModelError

ANCHOR_STRIDE = 32
ANCHOR_SIZES = (32, 64, 128, 256, 512)
CTR_CLAMP = 32.0
MAX_LOG_WH = abs(math.log(16 / 1000))
PRE_NMS_TOP_K = 1000
DEFAULT_SCORE_THR = 0.05
DEFAULT_NMS_IOU = 0.6
DEFAULT_MAX_PER_IMAGE = 100
RGB_CHANNELS = 3


class DetectionError(ModelError):
    """Inputs to detector pre/post-processing have the wrong shape, dtype or count."""


@dataclass(frozen=True)
class Normalization:
    """Per-channel normalisation applied after resizing: ``(pixel - mean) / std``.

    `mean` and `std` are given in the order of `channel_order`, the order the network expects.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: Literal["rgb", "bgr"]


IMAGENET_RGB = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), "rgb")
CAFFE_BGR = Normalization((103.53, 116.28, 123.675), (1.0, 1.0, 1.0), "bgr")


@dataclass(frozen=True)
class ImageMeta:
    """How one image was placed into the network input, to map boxes back.

    Attributes:
        original_hw: height and width of the image as given, in pixels.
        scale_xy: resized width / original width and resized height / original height.
        input_hw: height and width of the (padded) network input.
    """

    original_hw: tuple[int, int]
    scale_xy: tuple[float, float]
    input_hw: tuple[int, int]


@dataclass(frozen=True)
class Detections:
    """Detections of one image, sorted by score (highest first).

    Attributes:
        boxes_xyxy: K,4 float32, (x1, y1, x2, y2) in original image pixels.
        scores: K float32 in [0, 1].
        labels: K int64 class indices.
    """

    boxes_xyxy: Tensor
    scores: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        count = self.scores.shape[0]
        if self.boxes_xyxy.shape != (count, 4) or self.labels.shape != (count,):
            raise DetectionError(
                f"Detections expects boxes (K,4), scores (K,), labels (K,) with one K; got "
                f"{tuple(self.boxes_xyxy.shape)}, {tuple(self.scores.shape)}, "
                f"{tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.scores.shape[0]


def letterbox(
    image_hwc: np.ndarray | Tensor,
    input_hw: tuple[int, int],
    normalization: Normalization = IMAGENET_RGB,
) -> tuple[Tensor, ImageMeta]:
    """Resize one RGB image to fit `input_hw` keeping its aspect, pad bottom/right, normalise.

    Args:
        image_hwc: H,W,3 uint8 RGB image (numpy or torch, any device).
        input_hw: network input height and width.
        normalization: channel order, mean and std the network was trained with.

    Returns:
        The 3,H_in,W_in float32 input (padding is 0 after normalisation) and its `ImageMeta`.
    """
    if isinstance(image_hwc, np.ndarray) and not image_hwc.flags.writeable:
        image_hwc = image_hwc.copy()  # a read-only buffer view; torch wants writable memory
    image = torch.as_tensor(image_hwc)
    if image.ndim != 3 or image.shape[2] != RGB_CHANNELS or image.dtype != torch.uint8:
        raise DetectionError(
            f"image must be H,W,3 uint8 RGB; got shape {tuple(image.shape)} dtype {image.dtype}"
        )
    height, width = image.shape[:2]
    input_h, input_w = input_hw
    scale = min(input_h / height, input_w / width)
    resized_h = min(input_h, int(height * scale + 0.5))
    resized_w = min(input_w, int(width * scale + 0.5))
    chw = image.permute(2, 0, 1).float()  # 3,H,W RGB
    if normalization.channel_order == "bgr":
        chw = chw.flip(0)  # 3,H,W BGR
    resized = F.interpolate(
        chw[None], size=(resized_h, resized_w), mode="bilinear", align_corners=False
    )[0]  # 3,h,w
    mean = torch.tensor(normalization.mean, device=chw.device).view(3, 1, 1)
    std = torch.tensor(normalization.std, device=chw.device).view(3, 1, 1)
    padded = chw.new_zeros(3, input_h, input_w)
    padded[:, :resized_h, :resized_w] = (resized - mean) / std
    meta = ImageMeta(
        original_hw=(height, width),
        scale_xy=(resized_w / width, resized_h / height),
        input_hw=(input_h, input_w),
    )
    return padded, meta


def preprocess(
    images_hwc: Sequence[np.ndarray | Tensor],
    input_hw: tuple[int, int],
    normalization: Normalization = IMAGENET_RGB,
) -> tuple[Tensor, list[ImageMeta]]:
    """Letterbox a list of H,W,3 uint8 RGB images into one N,3,H_in,W_in float32 batch."""
    if not images_hwc:
        raise DetectionError("preprocess expects at least one image; got none")
    placed = [letterbox(image, input_hw, normalization) for image in images_hwc]
    return torch.stack([tensor for tensor, _ in placed]), [meta for _, meta in placed]


def anchor_grid(
    feature_hw: tuple[int, int],
    stride: int = ANCHOR_STRIDE,
    sizes: Sequence[int] = ANCHOR_SIZES,
    device: torch.device | str | None = None,
) -> Tensor:
    """Square anchors of every size at every feature-map location.

    Returns:
        H*W*A,4 float32 xyxy in network-input pixels; anchor ``(y * W + x) * A + a`` has centre
        ``(x * stride, y * stride)`` and side ``sizes[a]``.
    """
    feature_h, feature_w = feature_hw
    half = torch.tensor(sizes, dtype=torch.float32, device=device) / 2  # A
    base = torch.stack([-half, -half, half, half], dim=1)  # A,4
    shift_x = torch.arange(feature_w, dtype=torch.float32, device=device) * stride  # W
    shift_y = torch.arange(feature_h, dtype=torch.float32, device=device) * stride  # H
    grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")  # H,W each
    shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)  # H*W,1,4
    return (shifts + base).reshape(-1, 4)  # H*W*A,4


def encode_deltas(anchors_xyxy: Tensor, boxes_xyxy: Tensor) -> Tensor:
    """Deltas (dx, dy, dw, dh) that take each anchor to its box; M,4 and M,4 -> M,4.

    ``dx = (gx - px) / pw``, ``dw = log(gw / pw)`` (means 0, stds 1), the inverse of
    `decode_deltas` wherever no clamp applies.
    """
    anchor_wh = anchors_xyxy[:, 2:] - anchors_xyxy[:, :2]  # M,2
    anchor_xy = (anchors_xyxy[:, :2] + anchors_xyxy[:, 2:]) / 2  # M,2
    box_wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]  # M,2
    box_xy = (boxes_xyxy[:, :2] + boxes_xyxy[:, 2:]) / 2  # M,2
    return torch.cat([(box_xy - anchor_xy) / anchor_wh, torch.log(box_wh / anchor_wh)], dim=1)


def decode_deltas(
    anchors_xyxy: Tensor,
    deltas: Tensor,
    ctr_clamp: float = CTR_CLAMP,
    max_log_wh: float = MAX_LOG_WH,
) -> Tensor:
    """Apply deltas to anchors as YOLOF's ``DeltaXYWHBBoxCoder(add_ctr_clamp=True)`` does.

    The centre shift ``(dx * pw, dy * ph)`` is clamped to ``[-ctr_clamp, ctr_clamp]`` pixels and
    ``dw, dh`` are clamped from above at `max_log_wh` (``log(1000 / 16)``); there is no lower
    clamp, as in mmdet with the centre clamp on.

    Args:
        anchors_xyxy: M,4 float32 anchors.
        deltas: M,4 float32 (dx, dy, dw, dh).

    Returns:
        M,4 float32 boxes xyxy in the anchors' frame.
    """
    anchor_wh = anchors_xyxy[:, 2:] - anchors_xyxy[:, :2]  # M,2
    anchor_xy = (anchors_xyxy[:, :2] + anchors_xyxy[:, 2:]) / 2  # M,2
    shift_xy = (deltas[:, :2] * anchor_wh).clamp(min=-ctr_clamp, max=ctr_clamp)  # M,2
    box_xy = anchor_xy + shift_xy  # M,2
    box_wh = anchor_wh * deltas[:, 2:].clamp(max=max_log_wh).exp()  # M,2
    return torch.cat([box_xy - box_wh / 2, box_xy + box_wh / 2], dim=1)


def box_iou(boxes_a_xyxy: Tensor, boxes_b_xyxy: Tensor) -> Tensor:
    """Pairwise IoU; M,4 and N,4 xyxy -> M,N float32 (0 for no overlap or empty boxes)."""
    area_a = (boxes_a_xyxy[:, 2:] - boxes_a_xyxy[:, :2]).clamp(min=0).prod(dim=1)  # M
    area_b = (boxes_b_xyxy[:, 2:] - boxes_b_xyxy[:, :2]).clamp(min=0).prod(dim=1)  # N
    top_left = torch.maximum(boxes_a_xyxy[:, None, :2], boxes_b_xyxy[None, :, :2])  # M,N,2
    bottom_right = torch.minimum(boxes_a_xyxy[:, None, 2:], boxes_b_xyxy[None, :, 2:])  # M,N,2
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)  # M,N
    union = area_a[:, None] + area_b[None, :] - inter  # M,N
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def nms(boxes_xyxy: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression over one set of boxes.

    A box is dropped when its IoU with a kept, higher-scoring box is above `iou_threshold`.
    The IoU matrix is computed once (vectorised); the greedy pass walks it on the CPU.

    Args:
        boxes_xyxy: M,4 float32.
        scores: M float32.

    Returns:
        Indices of the kept boxes, int64, by decreasing score (ties keep input order).
    """
    order = torch.sort(scores, descending=True, stable=True).indices  # M
    ordered = boxes_xyxy[order]  # M,4
    suppresses = (box_iou(ordered, ordered) > iou_threshold).triu(diagonal=1).cpu().numpy()
    keep = np.ones(len(order), dtype=bool)
    for index in range(len(order)):
        if keep[index]:
            keep[index + 1 :] &= ~suppresses[index, index + 1 :]
    return order[torch.from_numpy(keep).to(order.device)]


def batched_nms(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Per-class NMS: boxes of different labels never suppress each other.

    Each class is moved to its own disjoint region (offset by label * (max coordinate + 1)),
    then one `nms` runs. Shapes as in `nms`, plus labels M int64; returns kept indices.
    """
    if boxes_xyxy.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes_xyxy.device)
    offsets = labels.to(boxes_xyxy.dtype) * (boxes_xyxy.max() + 1)  # M
    return nms(boxes_xyxy + offsets[:, None], scores, iou_threshold)


def _check_maps(
    cls_logits: Tensor, bbox_deltas: Tensor, num_anchors: int, image_metas: Sequence[ImageMeta]
) -> int:
    """Validate the raw maps; returns the class count K."""
    if cls_logits.ndim != 4 or bbox_deltas.ndim != 4:
        raise DetectionError(
            f"decode expects N,A*K,H,W and N,A*4,H,W maps; got {tuple(cls_logits.shape)} and "
            f"{tuple(bbox_deltas.shape)}"
        )
    batch, cls_channels, height, width = cls_logits.shape
    expected_deltas = (batch, num_anchors * 4, height, width)
    if tuple(bbox_deltas.shape) != expected_deltas or cls_channels % num_anchors:
        raise DetectionError(
            f"decode expects bbox_deltas {expected_deltas} and cls channels divisible by "
            f"{num_anchors} anchors; got {tuple(bbox_deltas.shape)} and {cls_channels}"
        )
    if len(image_metas) != batch:
        raise DetectionError(f"decode expects {batch} image metas; got {len(image_metas)}")
    return cls_channels // num_anchors


def decode(
    cls_logits: Tensor,
    bbox_deltas: Tensor,
    image_metas: Sequence[ImageMeta],
    score_thr: float = DEFAULT_SCORE_THR,
    nms_iou: float = DEFAULT_NMS_IOU,
    max_per_image: int = DEFAULT_MAX_PER_IMAGE,
    *,
    pre_nms_top_k: int = PRE_NMS_TOP_K,
    stride: int = ANCHOR_STRIDE,
    anchor_sizes: Sequence[int] = ANCHOR_SIZES,
) -> list[Detections]:
    """Turn YOLOF's raw maps into detections in original image pixels (mmdet's test recipe).

    Per image: sigmoid scores for every (anchor, class); keep those above `score_thr`; keep the
    `pre_nms_top_k` best; decode their deltas; per-class NMS at `nms_iou`; keep the
    `max_per_image` best; undo the letterbox scale and clip to the original image.

    Args:
        cls_logits: N,A*K,H,W float logits (after implicit objectness), channel ``a * K + k``.
        bbox_deltas: N,A*4,H,W float deltas, channel ``a * 4 + (dx, dy, dw, dh)``.
        image_metas: N metas from `preprocess`.

    Returns:
        N `Detections` on the maps' device, sorted by score.
    """
    num_anchors = len(anchor_sizes)
    num_classes = _check_maps(cls_logits, bbox_deltas, num_anchors, image_metas)
    batch, _, height, width = cls_logits.shape
    anchors = anchor_grid((height, width), stride, anchor_sizes, cls_logits.device)  # M,4
    scores_all = (
        cls_logits.float().permute(0, 2, 3, 1).reshape(batch, -1).sigmoid()
    )  # N,H*W*A*K, index (location * A + anchor) * K + class
    deltas_all = bbox_deltas.float().permute(0, 2, 3, 1).reshape(batch, -1, 4)  # N,H*W*A,4
    results = []
    for scores_flat, deltas, meta in zip(scores_all, deltas_all, image_metas, strict=True):
        candidates = torch.nonzero(scores_flat > score_thr).squeeze(1)  # C
        scores = scores_flat[candidates]  # C
        top = torch.sort(scores, descending=True, stable=True).indices[:pre_nms_top_k]
        candidates, scores = candidates[top], scores[top]
        anchor_index = candidates // num_classes
        labels = candidates % num_classes
        boxes = decode_deltas(anchors[anchor_index], deltas[anchor_index])  # C,4
        keep = batched_nms(boxes, scores, labels, nms_iou)[:max_per_image]
        results.append(
            Detections(_to_original(boxes[keep], meta), scores[keep], labels[keep].long())
        )
    return results


def _to_original(boxes_xyxy: Tensor, meta: ImageMeta) -> Tensor:
    """Map K,4 xyxy boxes from network-input pixels to original pixels, clipped to the image."""
    scale_x, scale_y = meta.scale_xy
    height, width = meta.original_hw
    scale = boxes_xyxy.new_tensor([scale_x, scale_y, scale_x, scale_y])
    limit = boxes_xyxy.new_tensor([width, height, width, height])
    return torch.minimum((boxes_xyxy / scale).clamp(min=0), limit)
