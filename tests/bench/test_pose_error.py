"""bench.pose_error: the error summary of keypoint offsets (box heights)."""

from __future__ import annotations

import numpy as np

from bench.pose_error import report


def test_report_counts_labelled_keypoints_and_their_errors() -> None:
    offsets = np.full((2, 17, 2), np.nan)
    offsets[0, 0] = (0.03, 0.04)  # error 0.05: not within 0.05, within 0.1
    offsets[0, 9] = (0.01, 0.0)  # left wrist: error 0.01
    offsets[1, 9] = (-0.02, 0.0)  # left wrist: error 0.02
    result = report(offsets)
    assert result["keypoints"] == 3
    assert result["median_error"] == 0.02
    assert (result["within_0.025"], result["within_0.05"], result["within_0.1"]) == (
        round(2 / 3, 4),
        round(2 / 3, 4),
        1.0,
    )
    wrist = result["per_keypoint"]["left_wrist"]
    assert wrist == {"median_error": 0.015, "median_dx": -0.005, "median_dy": 0.0}
