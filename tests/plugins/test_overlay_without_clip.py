"""``tpsoverlay`` without a clip element upstream (the real set's config) still draws the parse."""

from __future__ import annotations

import numpy as np

from parsing.results import HumanResult
from plugins.element import FrameContext
from plugins.frames import FrameRecord
from plugins.overlay import OverlayStage

WIDTH, HEIGHT = 160, 120


def test_humans_left_by_the_parts_element_are_drawn():
    keypoints = tuple((40.0 + 2 * k, 30.0 + 3 * k, 0.9) for k in range(17))
    human = HumanResult(box=(30.0, 20.0, 90.0, 100.0), score=0.8, keypoints=keypoints)
    record = FrameRecord("s", 3, 3000)
    record.humans = (human,)
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    OverlayStage().process(FrameContext("s", 3, 3000, WIDTH, HEIGHT, rgb, record))
    assert rgb[20:101, 30].any()  # the box's left edge
    assert rgb[30, 40].any()  # the first keypoint
    empty = FrameRecord("s", 4, 4000)  # nothing parsed yet: nothing drawn, no error
    blank = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    OverlayStage().process(FrameContext("s", 4, 4000, WIDTH, HEIGHT, blank, empty))
    assert not blank.any()
