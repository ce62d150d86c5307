"""The naive loop on a short synthetic video with tiny random networks: every stage is timed."""

from __future__ import annotations

import pytest

from bench.common import Weights, parser_settings, synthetic_videos
from bench.naive import STAGES, run_naive

FRAMES = 12
SIZE = (160, 120)


def test_every_frame_goes_through_every_stage_and_each_video_is_decided(random_weights, tmp_path):
    weights = Weights(
        "random",
        random_weights["person"],
        random_weights["pose"],
        random_weights["parts"],
        (random_weights["csn"],),
    )
    (video,) = synthetic_videos(tmp_path, 1, FRAMES, SIZE)
    times = run_naive(parser_settings(weights), [video, video])
    assert times.frames == 2 * FRAMES == len(times.per_frame_model_s)
    assert set(times.stage_s) == set(STAGES) and all(s > 0 for s in times.stage_s.values())
    assert times.final_clip_s > 0 and times.wall_s >= times.model_s
    assert sum(times.per_frame_model_s) == pytest.approx(times.model_s)
