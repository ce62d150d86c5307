"""``tpsparts`` in a real GStreamer pipeline: keypoints mode runs without part weights, a detecting
mode without them fails at start with a bus error naming the problem."""

from __future__ import annotations

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from plugins.element import register_elements  # noqa: E402
from plugins.parts import PARTS  # noqa: E402
from plugins.person import PERSON  # noqa: E402
from plugins.pose import POSE  # noqa: E402
from plugins.stamp import STAMP  # noqa: E402

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def elements() -> list[str]:
    Gst.init(None)
    return register_elements([STAMP, PERSON, POSE, PARTS])


def _play(parts: str, weights: dict) -> Gst.Message:
    """Three frames through stamp, person, pose and `parts`; the EOS or error message."""
    pipeline = Gst.parse_launch(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=160,height=120"
        f" ! tpsstamp stream=s ! tpsperson weights={weights['person']} score-threshold=0.0"
        f" ! tpspose weights={weights['pose']} min-keypoint-score=0.0 ! {parts} ! fakesink"
    )
    pipeline.set_state(Gst.State.PLAYING)
    try:
        message = pipeline.get_bus().timed_pop_filtered(
            TIMEOUT_S * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        assert message is not None, f"no EOS or error in {TIMEOUT_S} s"
        return message
    finally:
        pipeline.set_state(Gst.State.NULL)


def test_keypoints_mode_plays_without_part_weights(elements, random_weights):
    message = _play("tpsparts mode=keypoints keypoint-min-score=0.0", random_weights)
    assert message.type == Gst.MessageType.EOS, message.parse_error()


def test_fallback_mode_without_part_weights_is_a_bus_error(elements, random_weights):
    message = _play("tpsparts mode=fallback", random_weights)
    assert message.type == Gst.MessageType.ERROR
    error, _ = message.parse_error()
    assert "'fallback' runs the part detector: set weights" in error.message
