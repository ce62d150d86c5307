"""A simple IoU tracker: persons of consecutive frames matched one-to-one by box overlap.

Enough to key per-person clips in scenes where several people do different things: boxes of the
same person overlap strongly from one frame to the next, and the Hungarian method keeps two people
who pass each other from swapping identities more often than greedy matching would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

DEFAULT_MIN_IOU = 0.3
DEFAULT_MAX_AGE = 15
"""Frames a track survives without a matching person."""


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) xyxy boxes -> (N, M) IoU, continuous coordinates."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(1, -1, 4)
    width = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    height = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    age: int = 0


class IouTracker:
    """Assigns a stable `track_id` to each person box, frame after frame, for one stream."""

    def __init__(self, min_iou: float = DEFAULT_MIN_IOU, max_age: int = DEFAULT_MAX_AGE) -> None:
        self.min_iou, self.max_age = min_iou, max_age
        self.tracks: list[_Track] = []
        self.next_id = 0

    def update(self, boxes_xyxy: np.ndarray) -> list[int]:
        """Match this frame's (N, 4) boxes to live tracks; returns one track id per box."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        ids = [-1] * len(boxes)
        if self.tracks and len(boxes):
            overlap = iou_matrix(np.stack([t.box for t in self.tracks]), boxes)  # T,N
            rows, cols = linear_sum_assignment(-overlap)
            for row, col in zip(rows, cols, strict=True):
                if overlap[row, col] >= self.min_iou:
                    track = self.tracks[row]
                    track.box, track.age = boxes[col], -1
                    ids[col] = track.track_id
        for track in self.tracks:
            track.age += 1
        self.tracks = [track for track in self.tracks if track.age <= self.max_age]
        for index, box in enumerate(boxes):
            if ids[index] < 0:
                ids[index] = self.next_id
                self.tracks.append(_Track(self.next_id, box))
                self.next_id += 1
        return ids
