"""bench.pose_error: the error summary of keypoint offsets (box heights)."""

from __future__ import annotations

import numpy as np

from bench.pose_error import report, sides


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


def test_sides_counts_pairs_apart_and_tells_order_from_one_spot() -> None:
    truth = np.zeros((3, 17, 3))
    truth[..., 2] = 2
    predicted = np.zeros((3, 17, 2))
    wrists = (9, 10)
    truth[:, wrists[0], 0], truth[:, wrists[1], 0] = 0.6, 0.4  # apart: left on the image's right
    predicted[0, wrists, 0] = (0.55, 0.45)  # the right order
    predicted[1, wrists, 0] = (0.5, 0.505)  # one spot (and the wrong order)
    predicted[2, wrists, 0] = (0.4, 0.6)  # swapped
    truth[:, 15, 0], truth[:, 16, 0] = 0.3, 0.7
    truth[2, 16, 0] = 0.31  # the third person's ankles under 0.03 apart: not counted
    result = sides(predicted, truth)
    third = round(1 / 3, 4)
    assert result["wrist"] == {"apart": 3, "order_right": third, "same_spot": third}
    assert result["ankle"]["apart"] == 2
    assert result["hip"]["apart"] == 0 and np.isnan(result["hip"]["order_right"])
