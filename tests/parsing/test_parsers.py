"""The frame and clip parsers with real (randomly initialised) tiny networks loaded from disk."""

import numpy as np
import pytest
import torch

import models
from parsing.clip_parser import ClipEnsemble, ClipParser, ClipWindow, Decision, average
from parsing.frame_parser import FrameParser, PartDetector, PersonDetector, PoseEstimator
from parsing.networks import load_network
from parsing.settings import (
    ClipNetworkSettings,
    PartSettings,
    PersonSettings,
    PoseSettings,
)
from tps.labels import PriorTable
from tps.vocabulary import PART_TYPES, PARTS

ACTIONS = ["push_up", "lunge", "pull_ups"]
KEYPOINT_NAMES = [f"k{i}" for i in range(17)]


def _labels(type_name: str) -> list[str]:
    return [
        f"{action}_{type_name.capitalize()}_{state}"
        for action in ACTIONS
        for state in ("none", "bend")
    ]


CLIP_CLASSES = {"video": ACTIONS, **{t: _labels(t) for t in PART_TYPES}}


def _save(tmp_path, arch, classes, input_shape, **overrides):
    torch.manual_seed(0)
    counts = {k: len(v) for k, v in classes.items()} if isinstance(classes, dict) else len(classes)
    model = models.build(arch, num_classes=counts, **overrides)
    path = tmp_path / f"{arch}-{len(input_shape)}.safetensors"
    models.save_checkpoint(model, path, arch, classes, extra={"input_shape": list(input_shape)})
    return path


@pytest.fixture(scope="module")
def frame_parser(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("weights")
    person = load_network(
        PersonSettings(weights=_save(tmp_path, "yolof_tiny", ["person"], (3, 128, 160)))
    )
    pose = load_network(
        PoseSettings(weights=_save(tmp_path, "hrnet_tiny", KEYPOINT_NAMES, (3, 128, 96)))
    )
    parts = load_network(
        PartSettings(weights=_save(tmp_path, "yolof_tiny", list(PARTS), (3, 96, 96)))
    )
    return FrameParser(
        PersonDetector(
            person, PersonSettings(weights=tmp_path, score_threshold=0.0, max_persons=3)
        ),
        PoseEstimator(pose, PoseSettings(weights=tmp_path, min_keypoint_score=0.0)),
        PartDetector(parts, PartSettings(weights=tmp_path, score_threshold=0.0)),
    )


def test_frame_parser_gives_humans_with_keypoints_and_parts(frame_parser):
    frames = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), np.uint8) for i in range(2)]
    results = frame_parser(frames)
    assert len(results) == 2
    for humans in results:
        assert 1 <= len(humans) <= 3
        for human in humans:
            x1, y1, x2, y2 = human.box
            assert 0 <= x1 <= x2 <= 159 and 0 <= y1 <= y2 <= 119
            assert len(human.keypoints) == 17
            assert set(human.parts) <= set(PARTS) and human.parts
            for part in human.parts.values():
                assert part.state is None


def test_refined_boxes_contain_confident_keypoints(frame_parser):
    frame = np.random.default_rng(7).integers(0, 255, (120, 160, 3), np.uint8)
    for human in frame_parser([frame])[0]:
        keypoints = np.array(human.keypoints)
        inside = keypoints[(keypoints[:, 0] >= 0) & (keypoints[:, 0] <= 159)]
        inside = inside[(inside[:, 1] >= 0) & (inside[:, 1] <= 119)]
        x1, y1, x2, y2 = human.box
        assert (inside[:, 0] >= x1 - 1e-3).all() and (inside[:, 0] <= x2 + 1e-3).all()


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("clip")
    shared = _save(tmp_path, "ir_csn_tiny", CLIP_CLASSES, (3, 4, 32, 32))
    video_only = tmp_path / "video.safetensors"
    torch.manual_seed(1)
    model = models.build("ir_csn_tiny", num_classes={"video": 3})
    models.save_checkpoint(
        model, video_only, "ir_csn_tiny", {"video": ACTIONS}, extra={"input_shape": [3, 4, 32, 32]}
    )
    networks = [
        load_network(ClipNetworkSettings(weights=shared)),
        load_network(ClipNetworkSettings(weights=video_only)),
    ]
    return ClipEnsemble(networks, [{"video": 7.0}, {"video": 1.0}])


def test_ensemble_averages_heads_with_weights(ensemble):
    clips = np.random.default_rng(0).integers(0, 255, (2, 4, 32, 32, 3), np.uint8)
    decisions = ensemble(clips)
    assert len(decisions) == 2
    for decision in decisions:
        assert set(decision.probabilities) == {"video", *PART_TYPES}
        for probs in decision.probabilities.values():
            assert probs.sum() == pytest.approx(1.0)
    from models.csn import normalize_clip
    from parsing.clip_parser import softmax

    batch = normalize_clip(clips).numpy()
    first = softmax(ensemble.networks[0].run(batch)["video"])
    second = softmax(ensemble.networks[1].run(batch)["video"])
    np.testing.assert_allclose(
        decisions[0].probabilities["video"], (7 * first[0] + second[0]) / 8, rtol=1e-5
    )


def test_clip_parser_maps_labels_to_states_or_prior(ensemble):
    probs = {head: np.full(len(names), 0.01) for head, names in ensemble.classes.items()}
    probs["video"][1] = 0.9  # lunge
    for type_name in PART_TYPES:
        probs[type_name][3] = 0.9  # lunge_<Type>_bend
    decision = Decision(probs)
    result = ClipParser(ensemble).result(decision, "s0", 0, 3, 1)
    assert result.label == "lunge" and result.top5[0][0] == "lunge"
    assert {t: s.state for t, s in result.part_states.items()} == dict.fromkeys(PART_TYPES, "bend")
    prior = PriorTable(states={("lunge", t): "step" for t in PART_TYPES}, fallback={})
    with_prior = ClipParser(ensemble, prior).result(decision, "s0", 0, 3, 1)
    assert {t: s.state for t, s in with_prior.part_states.items()} == dict.fromkeys(
        PART_TYPES, "step"
    )


def test_clip_window_emits_at_span_then_every_hop_and_finishes():
    window = ClipWindow(clip_len=4, crop_size=16, frame_stride=2, hop=3, keep_all=True)
    due = []
    for index in range(20):
        clip = window.push(index, np.full((24, 32, 3), index, np.uint8))
        if clip is not None:
            assert clip.shape == (4, 16, 16, 3)
            due.append(index)
            assert clip[-1, 0, 0, 0] == index - 1 and clip[0, 0, 0, 0] == index - 7
    assert due == [7, 10, 13, 16, 19]
    clips = window.finish(num_clips=7)
    assert clips.shape == (7, 4, 16, 16, 3)


def test_running_average_is_causal_over_last_clips():
    window = ClipWindow(clip_len=1, crop_size=8, average_clips=2)
    decisions = [Decision({"video": np.array([p, 1 - p])}) for p in (1.0, 0.0, 0.5)]
    averaged = [window.add(d).probabilities["video"][0] for d in decisions]
    assert averaged == [1.0, 0.5, 0.25]
    assert average(decisions).probabilities["video"][0] == pytest.approx(0.5)
