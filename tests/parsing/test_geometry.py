"""Painting, box refinement and crop geometry on hand-made inputs with known answers."""

import numpy as np
import pytest
import torch

from parsing.boxes import refine_person_box
from parsing.crops import crop_and_resize, crop_points_to_frame, frame_points_to_crop
from parsing.painting import KEYPOINT_COLOURS_RGB, dot_radius, paint_keypoints


def _keypoints(points: list[tuple[float, float, float]]) -> np.ndarray:
    keypoints = np.zeros((17, 3), dtype=np.float32)
    keypoints[: len(points)] = points
    return keypoints


def test_paint_draws_each_confident_keypoint_in_its_colour():
    crop = np.zeros((100, 50, 3), dtype=np.uint8)
    painted = paint_keypoints(crop, _keypoints([(10, 20, 0.9), (30, 70, 0.1), (40, 80, 0.8)]))
    assert (painted[20, 10] == KEYPOINT_COLOURS_RGB[0]).all()
    assert (painted[70, 30] == 0).all(), "a keypoint below min_score is not painted"
    assert (painted[80, 40] == KEYPOINT_COLOURS_RGB[2]).all()
    assert (crop == 0).all(), "the input crop is left untouched"


def test_paint_radius_scales_with_crop():
    assert dot_radius(100, 50) == 2
    assert dot_radius(400, 200) == 8
    crop = np.zeros((400, 200, 3), dtype=np.uint8)
    painted = paint_keypoints(crop, _keypoints([(100, 200, 1.0)]))
    row = painted[200, :, 0] > 0
    assert row.sum() == 2 * 8 + 1


def test_paint_clips_dots_at_the_border():
    crop = np.zeros((20, 20, 3), dtype=np.uint8)
    painted = paint_keypoints(crop, _keypoints([(0, 0, 1.0), (-50, -50, 1.0)]))
    assert (painted[0, 0] == KEYPOINT_COLOURS_RGB[0]).all()


BODY = [(45, 45, 0.9), (55, 45, 0.9), (45, 75, 0.9), (55, 75, 0.9)]
"""Four confident keypoints, 10 x 30 pixels: their outline is (40.5, 42, 59.5, 76.5) with the
pads (0.15, 0.10, 0.15, 0.05) of the longer side, 30."""


@pytest.mark.parametrize(
    ("box", "keypoints", "expected"),
    [
        pytest.param([40, 40, 60, 80], [(50, 50, 0.9)], [40, 40, 60, 80], id="inside-unchanged"),
        pytest.param(
            [40, 40, 60, 80], [(30, 50, 0.9), (50, 90, 0.9)], [30, 40, 60, 90], id="enlarged"
        ),
        pytest.param([40, 40, 60, 80], [(0, 0, 0.1)], [40, 40, 60, 80], id="low-score-ignored"),
        pytest.param(
            [40, 40, 60, 80], [(-10, 50, 0.9), (150, 50, 0.9)], [0, 40, 99, 80], id="clipped"
        ),
        pytest.param(
            [40, 40, 60, 80], BODY, [40.25, 41, 59.75, 78.25], id="averaged-with-the-outline"
        ),
        pytest.param([20, 20, 80, 100], BODY, [30.25, 31, 69.75, 88.25], id="loose-box-shrinks"),
        pytest.param([50, 50, 52, 52], BODY, [45, 45, 55.75, 75], id="still-holds-every-keypoint"),
    ],
)
def test_refine_person_box(box, keypoints, expected):
    refined = refine_person_box(np.array(box, np.float32), _keypoints(keypoints), (120, 100))
    np.testing.assert_allclose(refined, expected, atol=1e-4)


def test_refine_person_box_without_keypoint_weight_only_enlarges():
    box = np.array([20, 20, 80, 100], dtype=np.float32)
    refined = refine_person_box(box, _keypoints(BODY), (120, 100), keypoint_weight=0.0)
    np.testing.assert_allclose(refined, box)


def test_crop_and_resize_identity_and_scaling():
    frame = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 4, 6)
    whole = crop_and_resize(frame, np.array([[-0.5, -0.5, 5.5, 3.5]]), (4, 6))
    torch.testing.assert_close(whole[0], frame)
    left_half = crop_and_resize(frame, np.array([[-0.5, -0.5, 2.5, 3.5]]), (4, 3))
    torch.testing.assert_close(left_half[0], frame[:, :, :3])
    assert crop_and_resize(frame, np.zeros((0, 4)), (2, 2)).shape == (0, 1, 2, 2)


def test_crop_points_round_trip():
    box = np.array([10.0, 20.0, 74.0, 148.0])
    points = np.array([[0.0, 0.0], [31.5, 63.5], [12.25, 100.0]])
    frame_points = crop_points_to_frame(points, box, (128, 64))
    np.testing.assert_allclose(frame_points[1], [42.0, 84.0])
    back = frame_points_to_crop(frame_points, box, (128, 64))
    np.testing.assert_allclose(back, points, atol=1e-5)
