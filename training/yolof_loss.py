"""YOLOF's training targets and losses: uniform matching, sigmoid focal loss, GIoU loss.

Follows mmdet's ``UniformAssigner`` and ``YOLOFHead.loss_by_feat``:

* Uniform matching: for every ground-truth box, the `match_times` anchors whose *decoded
  predictions* are closest to it and the `match_times` anchors that are themselves closest, by L1
  distance between (cx, cy, w, h); such a match is dropped (ignored) when IoU(anchor, gt) <
  `pos_ignore_thr`. Anchors matched by nobody are negatives, except that one whose predicted box
  has IoU > `neg_ignore_thr` with any ground truth is ignored (it found an object it was not
  assigned, so it should not be punished).
* Classification: sigmoid focal loss (alpha 0.25, gamma 2) over every non-ignored anchor and
  class, on the implicit-objectness logits the model outputs, summed and divided by the number of
  positive anchors (at least 1).
* Regression: GIoU loss (weight 1) between the decoded predicted boxes of every valid match and its
  ground truth (a box matched twice counts twice, as in mmdet), divided by the same number.

All boxes are (x1, y1, x2, y2) in network-input pixels, continuous (width = x2 - x1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from models.detection import ANCHOR_SIZES, ANCHOR_STRIDE, anchor_grid, box_iou, decode_deltas

MATCH_TIMES = 4
POS_IGNORE_THR = 0.15
NEG_IGNORE_THR = 0.7
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
GIOU_WEIGHT = 1.0
GIOU_EPS = 1e-6

NEGATIVE, IGNORED = 0, -1
"""Values of `Assignment.assigned_gt` besides the 1-based index of a matched ground truth."""


@dataclass(frozen=True)
class Assignment:
    """The result of uniform matching for one image with M anchors and G ground-truth boxes.

    Attributes:
        assigned_gt: M int64; 0 negative, -1 ignored, k > 0 positive for ground truth k - 1.
        match_anchor: 2*T*G int64 anchor index of every match (T = match_times), laid out as
            mmdet's: for rank t = 0..T-1, the t-th closest by prediction for gt 0..G-1, then the
            t-th closest by anchor for gt 0..G-1.
        match_gt: 2*T*G int64 ground-truth index of every match (0..G-1 repeated 2*T times).
        match_valid: 2*T*G bool; False where IoU(anchor, gt) < pos_ignore_thr.
    """

    assigned_gt: Tensor
    match_anchor: Tensor
    match_gt: Tensor
    match_valid: Tensor

    @property
    def num_positive(self) -> int:
        """Distinct positive anchors."""
        return int((self.assigned_gt > 0).sum())


def xyxy_to_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """N,4 (x1, y1, x2, y2) -> N,4 (cx, cy, w, h)."""
    return torch.cat(
        [(boxes_xyxy[:, :2] + boxes_xyxy[:, 2:]) / 2, boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], dim=1
    )


def uniform_assign(
    anchors_xyxy: Tensor,
    pred_boxes_xyxy: Tensor,
    gt_boxes_xyxy: Tensor,
    match_times: int = MATCH_TIMES,
    pos_ignore_thr: float = POS_IGNORE_THR,
    neg_ignore_thr: float = NEG_IGNORE_THR,
) -> Assignment:
    """Uniform matching of anchors to ground truth (see the module docstring).

    Args:
        anchors_xyxy: M,4 anchors.
        pred_boxes_xyxy: M,4 boxes decoded from the predicted deltas of each anchor.
        gt_boxes_xyxy: G,4 ground-truth boxes (G may be 0).

    Returns:
        the `Assignment`; with no ground truth every anchor is negative and there are no matches.
    """
    count = anchors_xyxy.shape[0]
    device = anchors_xyxy.device
    assigned = torch.full((count,), NEGATIVE, dtype=torch.int64, device=device)
    num_gt = gt_boxes_xyxy.shape[0]
    if num_gt == 0 or count == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return Assignment(assigned, empty, empty, empty.bool())
    pred = pred_boxes_xyxy.detach()
    gt_cxcywh = xyxy_to_cxcywh(gt_boxes_xyxy)
    cost_pred = torch.cdist(xyxy_to_cxcywh(pred), gt_cxcywh, p=1)  # M,G
    cost_anchor = torch.cdist(xyxy_to_cxcywh(anchors_xyxy), gt_cxcywh, p=1)  # M,G
    top = min(match_times, count)
    by_pred = torch.topk(cost_pred, k=top, dim=0, largest=False).indices  # T,G
    by_anchor = torch.topk(cost_anchor, k=top, dim=0, largest=False).indices  # T,G
    match_anchor = torch.cat((by_pred, by_anchor), dim=1).reshape(-1)  # T,2G -> 2*T*G
    match_gt = torch.arange(num_gt, device=device).repeat(2 * top)  # 2*T*G

    pred_ious = box_iou(pred, gt_boxes_xyxy)  # M,G
    anchor_ious = box_iou(anchors_xyxy, gt_boxes_xyxy)  # M,G
    assigned[pred_ious.max(dim=1).values > neg_ignore_thr] = IGNORED
    match_valid = anchor_ious[match_anchor, match_gt] >= pos_ignore_thr  # 2*T*G
    assigned[match_anchor] = torch.where(match_valid, match_gt + 1, IGNORED)
    return Assignment(assigned, match_anchor, match_gt, match_valid)


def sigmoid_focal_loss(
    logits: Tensor,
    targets: Tensor,
    weights: Tensor,
    alpha: float = FOCAL_ALPHA,
    gamma: float = FOCAL_GAMMA,
) -> Tensor:
    """Summed sigmoid focal loss (mmdet's ``sigmoid_focal_loss``).

    Args:
        logits: N,K class logits.
        targets: N,K float one-hot targets (all zeros for background).
        weights: N float per-row weights (0 drops a row).

    Returns:
        scalar: sum over rows and classes of ``BCE * (alpha_t * (1 - p_t) ** gamma) * weight``.
    """
    probs = logits.sigmoid()
    miss = (1 - probs) * targets + probs * (1 - targets)  # 1 - p_t
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (bce * alpha_t * miss.pow(gamma) * weights[:, None]).sum()


def giou_loss(pred_xyxy: Tensor, target_xyxy: Tensor, eps: float = GIOU_EPS) -> Tensor:
    """Element-wise ``1 - GIoU`` of aligned boxes; N,4 and N,4 -> N."""
    pred_area = (pred_xyxy[:, 2:] - pred_xyxy[:, :2]).clamp(min=0).prod(dim=1)  # N
    target_area = (target_xyxy[:, 2:] - target_xyxy[:, :2]).clamp(min=0).prod(dim=1)  # N
    inter_wh = (
        torch.minimum(pred_xyxy[:, 2:], target_xyxy[:, 2:])
        - torch.maximum(pred_xyxy[:, :2], target_xyxy[:, :2])
    ).clamp(min=0)  # N,2
    inter = inter_wh.prod(dim=1)  # N
    union = (pred_area + target_area - inter).clamp(min=eps)  # N
    enclose_wh = (
        torch.maximum(pred_xyxy[:, 2:], target_xyxy[:, 2:])
        - torch.minimum(pred_xyxy[:, :2], target_xyxy[:, :2])
    ).clamp(min=0)  # N,2
    enclose = enclose_wh.prod(dim=1).clamp(min=eps)  # N
    giou = inter / union - (enclose - union) / enclose
    return 1 - giou


def yolof_loss(
    cls_logits: Tensor,
    bbox_deltas: Tensor,
    gt_boxes_xyxy: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
    anchor_sizes: Sequence[int] = ANCHOR_SIZES,
    stride: int = ANCHOR_STRIDE,
) -> dict[str, Tensor]:
    """YOLOF's training loss for a batch of raw maps.

    Args:
        cls_logits: N,A*K,H,W logits after implicit objectness (channel ``a * K + k``).
        bbox_deltas: N,A*4,H,W deltas (channel ``a * 4 + (dx, dy, dw, dh)``).
        gt_boxes_xyxy: per image, G_i,4 float ground-truth boxes in network-input pixels.
        gt_labels: per image, G_i int64 class indices in 0..K-1.
        anchor_sizes: anchor sides (A of them); stride: the maps' stride in input pixels.

    Returns:
        {"loss_cls": focal loss, "loss_bbox": GIoU loss}, both divided by the positive count.
    """
    batch, channels, height, width = cls_logits.shape
    num_anchors = len(anchor_sizes)
    num_classes = channels // num_anchors
    anchors = anchor_grid((height, width), stride, anchor_sizes, cls_logits.device)  # M,4
    logits = cls_logits.permute(0, 2, 3, 1).reshape(batch, -1, num_classes)  # N,M,K
    deltas = bbox_deltas.permute(0, 2, 3, 1).reshape(batch, -1, 4)  # N,M,4
    targets = torch.zeros_like(logits)  # N,M,K
    weights = torch.ones(logits.shape[:2], device=logits.device)  # N,M
    pred_boxes, target_boxes = [], []
    positives = 0
    for index in range(batch):
        boxes = decode_deltas(anchors, deltas[index])  # M,4
        gt_boxes = gt_boxes_xyxy[index].to(boxes)
        assignment = uniform_assign(anchors, boxes, gt_boxes)
        assigned = assignment.assigned_gt
        weights[index, assigned == IGNORED] = 0
        positive = torch.nonzero(assigned > 0).squeeze(1)
        targets[index, positive, gt_labels[index].to(positive.device)[assigned[positive] - 1]] = 1
        positives += len(positive)
        valid = assignment.match_valid
        pred_boxes.append(boxes[assignment.match_anchor[valid]])
        target_boxes.append(gt_boxes[assignment.match_gt[valid]])
    normaliser = max(positives, 1)
    loss_cls = sigmoid_focal_loss(
        logits.reshape(-1, num_classes), targets.reshape(-1, num_classes), weights.reshape(-1)
    )
    matched_pred = torch.cat(pred_boxes)
    loss_bbox = (
        giou_loss(matched_pred, torch.cat(target_boxes)).sum()
        if len(matched_pred)
        else deltas.sum() * 0
    )
    return {"loss_cls": loss_cls / normaliser, "loss_bbox": GIOU_WEIGHT * loss_bbox / normaliser}
