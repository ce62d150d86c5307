"""The synthetic camera keeps a real photograph's handedness, so a horizontal flip with left and
right swapped (the pose recipe's flip augmentation and the parser's flip test) gives a person that
the world also draws."""

from __future__ import annotations

import numpy as np
import pytest

from tps.synth.body import J_SHOULDER, LEFT, RIGHT, Camera, Pose, Proportions, skeleton

FRAME_X = 320.0
GROUND_Y = 400.0
SCALE = 200.0
SHIFT = (3.0, -2.0)


def _project(yaw: float, facing: float, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return Camera(yaw, facing, FRAME_X, GROUND_Y, SCALE).project(joints, SHIFT)


def _swap_sides(joints: np.ndarray) -> np.ndarray:
    """The same body with its left and right exchanged (its mirror image)."""
    swapped = joints.copy()
    swapped[:, 2] *= -1
    return swapped


@pytest.mark.parametrize("yaw", [pytest.param(0.3, id="profile"), pytest.param(-1.2, id="frontal")])
def test_facing_left_is_the_mirror_image_with_sides_swapped(yaw: float) -> None:
    joints = skeleton(Proportions(), Pose())
    xy_right, depth_right = _project(yaw, 1.0, joints)
    xy_left, depth_left = _project(yaw, -1.0, _swap_sides(joints))
    np.testing.assert_allclose(xy_left[:, 0], 2 * (FRAME_X + SHIFT[0]) - xy_right[:, 0])
    np.testing.assert_allclose(xy_left[:, 1], xy_right[:, 1])
    np.testing.assert_allclose(depth_left, depth_right)


@pytest.mark.parametrize(
    "facing", [pytest.param(1.0, id="walks-right"), pytest.param(-1.0, id="walks-left")]
)
def test_a_profile_shows_the_side_a_real_camera_sees(facing: float) -> None:
    """Walking towards the image's right a person shows the right side; to its left, the left."""
    joints = skeleton(Proportions(), Pose())
    _, depth = _project(0.0, facing, joints)
    near, far = (RIGHT, LEFT) if facing > 0 else (LEFT, RIGHT)
    assert depth[J_SHOULDER[near]] > depth[J_SHOULDER[far]]


@pytest.mark.parametrize(
    "facing", [pytest.param(1.0, id="turned-right"), pytest.param(-1.0, id="turned-left")]
)
def test_a_person_facing_the_camera_has_the_left_shoulder_on_the_image_right(facing: float) -> None:
    joints = skeleton(Proportions(), Pose())
    xy, _ = _project(-1.45, facing, joints)
    assert xy[J_SHOULDER[LEFT], 0] > xy[J_SHOULDER[RIGHT], 0]
