"""Overlay drawing: sizes follow the frame, so 1080p annotations read as well as 320x240 ones."""

from __future__ import annotations

import numpy as np
import pytest

from tps import drawing
from tps.drawing import PERSON_COLOUR, SKELETON_COLOUR, Figure, draw_figures

GREY = 128


def _frame(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), GREY, np.uint8)


def _box_line_thickness(width: int, height: int) -> int:
    """Pixels across the top edge of a person box drawn on a `width` x `height` frame."""
    frame = _frame(width, height)
    draw_figures(frame, [Figure(box=(width / 4, height / 4, 3 * width / 4, 3 * height / 4))])
    column = frame[: height // 2, width // 2]  # the top edge only
    return int(np.all(column == PERSON_COLOUR, axis=1).sum())


def _caption_height(width: int, height: int) -> int:
    """Rows the caption's text (its black background included) covers."""
    frame = _frame(width, height)
    draw_figures(frame, [], caption="s0 #12  jump 0.90")
    rows = np.flatnonzero(np.any(frame != GREY, axis=(1, 2)))
    return int(rows.max() - rows.min() + 1)


def _dot_width(width: int, height: int) -> int:
    """Pixels across a lone keypoint's dot."""
    frame = _frame(width, height)
    points = [(0.0, 0.0, 0.0)] * 17
    points[0] = (width / 2, height / 2, 1.0)
    draw_figures(frame, [Figure(box=(0, 0, 1, 1), keypoints=points)])
    return int(np.all(frame[height // 2] == SKELETON_COLOUR, axis=1).sum())


def test_lines_are_thicker_at_1080p_than_at_240p():
    small, large = _box_line_thickness(320, 240), _box_line_thickness(1920, 1080)
    assert small == 1, "320x240 keeps its one-pixel lines"
    assert large >= 3 > small


def test_label_text_grows_with_the_frame():
    small, large = _caption_height(320, 240), _caption_height(1920, 1080)
    assert large >= 2.5 * small
    assert large >= 30, "legible at 1080p: at least ~3% of the frame height"


def test_keypoint_dots_grow_with_the_frame():
    assert _dot_width(1920, 1080) > _dot_width(320, 240) >= 1


@pytest.mark.parametrize(
    ("size", "same_as"),
    [
        pytest.param((1080, 1920), (1920, 1080), id="portrait"),
        pytest.param((3840, 1080), (1920, 1080), id="wide"),
    ],
)
def test_sizes_follow_the_shorter_side(size, same_as):
    assert drawing.Style.for_frame(*size) == drawing.Style.for_frame(*same_as)
