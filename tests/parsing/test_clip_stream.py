"""One stream's clip parser with a real (randomly initialised) tiny CSN: windows, tracks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from parsing.clip_parser import ClipEnsemble, ClipWindow
from parsing.clip_stream import ClipStream, ClipWindowing, with_state
from parsing.networks import load_network
from parsing.results import ClipResult, HumanResult, PartResult, PartState
from parsing.settings import ClipNetworkSettings
from tps.labels import PriorTable
from tps.vocabulary import PART_TYPES, PARTS, part_type

WIDTH, HEIGHT = 160, 120
CLIP_LEN = 4
"""Frames per clip of the tests' CSN (see `tests.conftest.TEST_CLIP_SHAPE`)."""


@pytest.fixture(scope="module")
def ensemble(random_weights) -> ClipEnsemble:
    network = load_network(ClipNetworkSettings(weights=random_weights["csn"]))
    return ClipEnsemble([network], [{}])


def _windowing(ensemble: ClipEnsemble, final_clips: int = 3) -> ClipWindowing:
    return ClipWindowing(ensemble, hop=2, frame_stride=0, average_clips=2, final_clips=final_clips)


def _frame(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)


def _human(x: float, y: float) -> HumanResult:
    keypoints = tuple((x + k, y + k, 0.9) for k in range(17))
    parts = {PARTS[0]: PartResult((x, y, x + 8, y + 8), 0.8)}
    return HumanResult((x, y, x + 40, y + 60), 0.9, keypoints, parts)


def test_windowing_takes_the_trained_geometry_and_decides_causally(ensemble):
    windowing = _windowing(ensemble)
    window = windowing.window()
    assert (window.clip_len, window.crop_size) == (CLIP_LEN, ensemble.crop_size)
    assert window.short_side == ensemble.short_side and window.frame_stride == 1
    assert window.all_frames == [] and window.hop == 2
    assert windowing.window(short_side=40).short_side == 40
    assert _windowing(ensemble, final_clips=0).window().all_frames is None
    clips = [window.push(index, _frame(index)) for index in range(CLIP_LEN)]
    first = windowing.decide(window, clips[-1])
    assert first.probabilities["video"].sum() == pytest.approx(1.0)
    second = windowing.decide(window, clips[-1])  # the same clip again: the average is unchanged
    np.testing.assert_allclose(second.probabilities["video"], first.probabilities["video"])
    assert windowing.whole(ClipWindow(CLIP_LEN, ensemble.crop_size)) is None
    assert set(windowing.whole(window).probabilities) == {"video", *PART_TYPES}


def test_whole_frame_clips_give_every_human_the_latest_states(ensemble):
    stream = ClipStream(_windowing(ensemble))
    assert not stream.per_person
    humans = (_human(10, 10), _human(90, 30))
    frames = [stream.push("s", index, _frame(index), humans) for index in range(7)]
    decided = [index for index, frame in enumerate(frames) if frame.decided]
    assert decided == [CLIP_LEN - 1, CLIP_LEN + 1]  # at the span, then every hop
    assert frames[0].latest is None and frames[0].humans[0].parts[PARTS[0]].state is None
    latest = frames[-1].latest
    assert latest is frames[CLIP_LEN + 1].decided[0]
    assert (latest.stream, latest.start_frame, latest.end_frame) == ("s", 2, CLIP_LEN + 1)
    for human in frames[-1].humans:
        assert human.track_id is None
        assert human.parts[PARTS[0]].state == latest.part_states[part_type(PARTS[0])].state
    final = stream.finish()
    assert (final.stream, final.start_frame, final.end_frame, final.track_id) == ("s", 0, 6, None)


def test_person_clips_are_classified_per_track_and_averaged_into_the_stream(ensemble):
    stream = ClipStream(_windowing(ensemble), track=True)
    assert stream.per_person
    for index in range(30):
        humans = [_human(90, 30)]
        if index < 10:  # the second person leaves; its track ends after the tracker's max age
            humans.append(_human(10 + index, 10))
        parsed = stream.push("s", index, _frame(index), humans)
        assert [h.track_id for h in parsed.humans] == [0, 1][: len(humans)]
        if parsed.decided:
            *tracks, whole = parsed.decided
            assert {result.track_id for result in tracks} <= {0, 1} and whole.track_id is None
            assert whole.start_frame == min(result.start_frame for result in tracks)
            assert whole is parsed.latest
            assert parsed.humans[0].parts[PARTS[0]].state is not None
    assert set(stream.track_windows) == {0} and len(stream.ended_windows) == 1
    final = stream.finish()
    assert (final.start_frame, final.end_frame, final.track_id) == (0, 29, None)
    assert ClipStream(_windowing(ensemble, final_clips=0), track=True).finish() is None


@pytest.mark.parametrize("track_weights", ["equal", "frames"])
def test_the_streams_decision_weighs_its_tracks_as_configured(ensemble, track_weights):
    windowing = dataclasses.replace(_windowing(ensemble), track_weights=track_weights)
    stream = ClipStream(windowing, track=True)
    for index in range(12):  # a person seen 12 frames, another only its first 3
        humans = [_human(90, 30), _human(10, 10)][: 2 if index < 3 else 1]
        stream.push("s", index, _frame(index), humans)
    windows = [stream.track_windows[0], stream.track_windows[1]]
    assert [window.frames_seen for window in windows] == [12, 3]
    wholes = [windowing.whole(window).probabilities["video"] for window in windows]
    weights = [12, 3] if track_weights == "frames" else [1, 1]
    expected = np.average(wholes, axis=0, weights=weights)
    final = stream.finish()
    np.testing.assert_allclose(final.top5[0][1], expected.max(), rtol=1e-5)
    assert not np.allclose(wholes[0], wholes[1])  # the weighting matters here


def test_with_state_sets_the_track_and_each_part_types_state():
    human = _human(10, 10)
    states = {name: PartState(f"{name}_state", 0.5) for name in PART_TYPES}
    clip = ClipResult("s", 0, 3, 1, "lunge", 0.9, (("lunge", 0.9),), states)
    stated = with_state(human, clip, 4)
    assert stated.track_id == 4 and stated.box == human.box
    assert stated.parts[PARTS[0]].state == f"{part_type(PARTS[0])}_state"
    assert with_state(human, None, None) == human


def test_prior_table_gives_the_part_states(ensemble):
    prior = PriorTable(states={}, fallback=dict.fromkeys(PART_TYPES, "step"))
    stream = ClipStream(_windowing(ensemble), prior)
    for index in range(CLIP_LEN):
        parsed = stream.push("s", index, _frame(index), ())
    assert {state.state for state in parsed.latest.part_states.values()} == {"step"}
