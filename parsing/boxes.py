"""Person-box refinement and crop geometry, in frame pixel coordinates (x1, y1, x2, y2).

The report enlarges each detected person box until every confident keypoint lies inside, so the
part detector's crop holds the whole body even where the detector cut off a hand or a foot.
"""

from __future__ import annotations

import numpy as np

DEFAULT_REFINE_MIN_SCORE = 0.3
"""Keypoints below this confidence do not enlarge the box."""

DEFAULT_REFINE_MARGIN = 0.05
"""Extra border around the keypoints, as a fraction of the keypoints' extent."""


def refine_person_box(
    box_xyxy: np.ndarray,
    keypoints_xys: np.ndarray,
    frame_hw: tuple[int, int],
    *,
    min_score: float = DEFAULT_REFINE_MIN_SCORE,
    margin: float = DEFAULT_REFINE_MARGIN,
) -> np.ndarray:
    """Enlarge a person box until every confident keypoint (plus a margin) is inside.

    Args:
        box_xyxy: (4,) person box in frame pixels.
        keypoints_xys: (17, 3) x, y in frame pixels and a score.
        frame_hw: (height, width) of the frame; the result is clipped to it.
        min_score: keypoints below this score are ignored.
        margin: border added around the confident keypoints, as a fraction of their extent.

    Returns:
        (4,) float32 box that contains `box_xyxy` (clipped) and every confident keypoint.
    """
    box = np.asarray(box_xyxy, dtype=np.float32).copy()
    confident = keypoints_xys[keypoints_xys[:, 2] >= min_score, :2]
    if len(confident):
        low, high = confident.min(axis=0), confident.max(axis=0)
        pad = margin * (high - low)
        box[:2] = np.minimum(box[:2], low - pad)
        box[2:] = np.maximum(box[2:], high + pad)
    height, width = frame_hw
    box[[0, 2]] = box[[0, 2]].clip(0, width - 1)
    box[[1, 3]] = box[[1, 3]].clip(0, height - 1)
    return box
