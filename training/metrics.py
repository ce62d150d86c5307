"""Detection average precision (VOC style) for the person and part detectors.

`average_precision` is PASCAL VOC's all-point AP: detections of every image are pooled and
sorted by score; each takes the ground truth it overlaps most in its image, and is a true positive
when that IoU is at least the threshold and the ground truth is not already taken (a duplicate is
a false positive; VOC does not fall back to the next best ground truth). AP is the area under the
precision-recall curve after making precision monotone (the envelope), summed where recall
changes. Boxes are (x1, y1, x2, y2) in one pixel frame; IoU is continuous (width = x2 - x1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from models.detection import box_iou

AP50_IOU = 0.5


def average_precision(
    detections: Sequence[tuple[np.ndarray, np.ndarray]],
    ground_truths: Sequence[np.ndarray],
    iou_threshold: float = AP50_IOU,
) -> float:
    """VOC all-point AP of one class over a set of images.

    Args:
        detections: per image, ((K, 4) boxes, (K,) scores).
        ground_truths: per image, (G, 4) boxes (same image order).
        iou_threshold: the IoU a detection needs to count (0.5 for AP50).

    Returns:
        AP in [0, 1]; NaN when there is no ground truth at all (the class is absent).
    """
    if len(detections) != len(ground_truths):
        raise ValueError(
            f"average_precision expects one detection set per image; got {len(detections)} "
            f"detection sets for {len(ground_truths)} images"
        )
    total_gt = sum(len(boxes) for boxes in ground_truths)
    if total_gt == 0:
        return math.nan
    scores, hits = [], []
    for (boxes, image_scores), gt_boxes in zip(detections, ground_truths, strict=True):
        order = np.argsort(-np.asarray(image_scores, dtype=np.float64), kind="stable")
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[order]
        image_scores = np.asarray(image_scores, dtype=np.float64)[order]
        taken = np.zeros(len(gt_boxes), dtype=bool)
        if len(gt_boxes) and len(boxes):
            ious = box_iou(
                torch.from_numpy(boxes), torch.from_numpy(np.asarray(gt_boxes, dtype=np.float32))
            ).numpy()  # K,G
        for index in range(len(boxes)):
            hit = False
            if len(gt_boxes):
                best = int(ious[index].argmax())
                if ious[index, best] >= iou_threshold and not taken[best]:
                    taken[best] = hit = True
            hits.append(hit)
        scores.extend(image_scores.tolist())
    order = np.argsort(-np.asarray(scores), kind="stable")
    true_positives = np.cumsum(np.asarray(hits, dtype=np.float64)[order])
    false_positives = np.cumsum(1.0 - np.asarray(hits, dtype=np.float64)[order])
    recall = true_positives / total_gt
    precision = true_positives / np.maximum(true_positives + false_positives, np.finfo(float).eps)
    recall_points = np.concatenate(([0.0], recall, [1.0]))
    precision_points = np.concatenate(([0.0], precision, [0.0]))
    precision_points = np.maximum.accumulate(precision_points[::-1])[::-1]  # the envelope
    changes = np.nonzero(recall_points[1:] != recall_points[:-1])[0]
    return float(
        np.sum(
            (recall_points[changes + 1] - recall_points[changes]) * precision_points[changes + 1]
        )
    )
