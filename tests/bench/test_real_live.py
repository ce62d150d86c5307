"""The live real-footage bench: a looped clip through the real pipeline, stopped on time."""

from __future__ import annotations

import numpy as np

from bench.real_live import DEMO_CONFIG, four_people_clip, measure
from pipeline.settings import load_parser_settings
from tps.video import read_frames

SECONDS = 2.5


def test_a_looped_one_second_clip_runs_live_until_stopped(shared_media):
    settings = load_parser_settings(DEMO_CONFIG, ["parser.clip=null"])
    figures = measure(settings, shared_media / "pose_demo.mp4", SECONDS)
    # the clip lasts 1 s: frames past it mean the loop went on, and the timer stopped it
    assert SECONDS - 1 <= figures["seconds_timed"] <= SECONDS + 2
    parsed, dropped = figures["frames_parsed"], figures["frames_dropped"]
    # at 30 frames/s in, about SECONDS * 30 frames are offered; the gate drops what it cannot take
    assert parsed >= 3 and parsed + dropped <= figures["frames_offered"] <= parsed + dropped + 2
    assert figures["frames_offered"] >= 25 * figures["seconds_timed"]
    assert figures["parsed_fps"] > 0 and figures["cpu_ms_per_parsed_frame"] > 0
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p99_ms"]
    assert 0 <= figures["people_per_frame_mean"] <= figures["people_per_frame_max"]
    assert figures["stage_ms_per_frame"]["tpsperson"] > 0
    assert "tpsclip" not in figures["stage_ms_per_frame"]


def test_the_four_people_clip_is_640x480_with_a_mirrored_right_half(shared_media, tmp_path):
    frames = read_frames(four_people_clip(tmp_path), [0, 71])
    assert frames.shape == (2, 480, 640, 3)
    left, right = frames[1, :, :320].astype(int), frames[1, :, 320:][:, ::-1].astype(int)
    assert np.abs(left - right).mean() < 8  # the same pixels up to H.264 noise
