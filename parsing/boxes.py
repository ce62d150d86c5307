"""Person-box refinement and crop geometry, in frame pixel coordinates (x1, y1, x2, y2).

The report refines each detected person box around the pose, so the part detector's crop holds the
whole body even where the detector cut off a hand or a foot. Here the refined box also moves toward
the ground truth's convention, the inclusive bounds of the person's visible pixels: the detector's
boxes are loose (several pixels too wide on the synthetic set), so the box becomes the average of
the detector's box and the keypoints' outline (their extent plus the body beyond the outermost
joints), and then still contains every confident keypoint. Against enlarging the detector's box
alone, the mean IoU with the ground truth rose on data/val and data/test; the people matched at the
scorer's IoU > 0.5 rose 1 point on data/val and fell 1 on the first 60 test videos, whose score
rose (`bench.person_recall`, docs/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

DEFAULT_REFINE_MIN_SCORE = 0.3
"""Keypoints below this confidence do not move the box."""

KEYPOINT_OUTLINE_PADS = (0.15, 0.10, 0.15, 0.05)
"""Border (left, top, right, bottom) from the confident keypoints' extent to the visible body, in
units of that extent's longer side: hands reach past the wrists, hair above the eyes, soles below
the ankles. Chosen on data/val with `bench.person_recall` from a small grid (sides 0.10-0.22, top
0.04-0.12, bottom 0-0.06)."""

KEYPOINT_WEIGHT = 0.5
"""Weight of the keypoints' outline against the detector's box (0: only enlarge the detector's
box to the keypoints; 1: the outline alone, which matched fewer people on data/val)."""

MIN_OUTLINE_KEYPOINTS = 4
"""Fewer confident keypoints than this give no outline; the box is then only enlarged."""

_OUTWARD = np.array([-1, -1, 1, 1], dtype=np.float32)


def refine_person_box(
    box_xyxy: np.ndarray,
    keypoints_xys: np.ndarray,
    frame_hw: tuple[int, int],
    *,
    min_score: float = DEFAULT_REFINE_MIN_SCORE,
    keypoint_weight: float = KEYPOINT_WEIGHT,
) -> np.ndarray:
    """Move a person box toward its keypoints' outline, then enlarge it to hold every one.

    Args:
        box_xyxy: (4,) person box in frame pixels.
        keypoints_xys: (17, 3) x, y in frame pixels and a score.
        frame_hw: (height, width) of the frame; the result is clipped to it.
        min_score: keypoints below this score are ignored.
        keypoint_weight: weight of the outline (`KEYPOINT_OUTLINE_PADS` around the confident
            keypoints) in its average with `box_xyxy`; used from `MIN_OUTLINE_KEYPOINTS` on.

    Returns:
        (4,) float32 box, clipped to the frame, that contains every confident keypoint.
    """
    box = np.asarray(box_xyxy, dtype=np.float32).copy()
    confident = keypoints_xys[keypoints_xys[:, 2] >= min_score, :2].astype(np.float32)
    if len(confident):
        low, high = confident.min(axis=0), confident.max(axis=0)
        if len(confident) >= MIN_OUTLINE_KEYPOINTS:
            extent = float((high - low).max())
            pads = np.array(KEYPOINT_OUTLINE_PADS, dtype=np.float32) * extent
            outline = np.concatenate((low, high)) + _OUTWARD * pads
            box = (1 - keypoint_weight) * box + keypoint_weight * outline
        box[:2] = np.minimum(box[:2], low)
        box[2:] = np.maximum(box[2:], high)
    height, width = frame_hw
    box[[0, 2]] = box[[0, 2]].clip(0, width - 1)
    box[[1, 3]] = box[[1, 3]].clip(0, height - 1)
    return box
