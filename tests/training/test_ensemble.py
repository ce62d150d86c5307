"""Ensemble head weights: the grid fit, its tie rule, real networks scored on a real split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parsing.settings import ClipNetworkSettings
from tests.training.test_pose import make_tiny_split
from tps.formats import read_gt
from training.common import TrainError, seed_everything
from training.csn import (
    UNKNOWN_LABEL,
    CsnConfig,
    VideoScores,
    build_network,
    build_vocabulary,
    save_networks,
    video_labels,
)
from training.ensemble import (
    ensemble_scores,
    fit_head_weights,
    weighted_accuracy,
    weighted_log_loss,
)


def _scores(rows: list[list[float]], targets: list[int]) -> VideoScores:
    probabilities = np.array(rows)
    names = [f"v{index}" for index in range(len(rows))]
    return VideoScores(names, {"video": probabilities}, {"video": np.array(targets)})


def test_fit_prefers_the_network_that_is_right() -> None:
    # the first network is right on every video but unsure; the second is sure and always wrong:
    # only shares above 0.8 make the mixture right, and among them the first alone is surest
    first = _scores([[0.6, 0.4], [0.4, 0.6]], [0, 1])
    second = _scores([[0.1, 0.9], [0.9, 0.1]], [0, 1])
    fitted = fit_head_weights([first, second])
    assert fitted == [{"video": 1.0}, {"video": 0.0}]
    assert weighted_accuracy([first, second], fitted, "video") == 1.0
    assert weighted_accuracy([first, second], [{"video": 1.0}, {"video": 1.0}], "video") == 0.0


def test_accuracy_ties_go_to_the_lowest_log_loss() -> None:
    # both networks are right on both videos, so every share ties on accuracy; the first is the
    # surer on both (0.9 and 0.7 against 0.6), so the mixture's log loss falls as its share grows
    first = _scores([[0.9, 0.1], [0.3, 0.7]], [0, 1])
    second = _scores([[0.6, 0.4], [0.4, 0.6]], [0, 1])
    fitted = fit_head_weights([first, second])
    assert fitted == [{"video": 1.0}, {"video": 0.0}]
    losses = [
        weighted_log_loss([first, second], [{"video": share}, {"video": 1 - share}], "video")
        for share in (0.0, 0.5, 1.0)
    ]
    assert losses[0] > losses[1] > losses[2]


def test_fit_keeps_equal_weights_when_the_split_cannot_tell() -> None:
    # identical networks: every share has the same accuracy and log loss, equal weights win
    first = _scores([[0.6, 0.4], [0.6, 0.4], [0.4, 0.6], [0.6, 0.4]], [0, 0, 1, 1])
    assert fit_head_weights([first, first]) == [{"video": 0.5}, {"video": 0.5}]


def test_log_loss_leaves_out_unknown_classes() -> None:
    # the second video's class is unseen by the networks: only the first counts
    scores = _scores([[0.5, 0.5], [0.9, 0.1]], [0, UNKNOWN_LABEL])
    assert weighted_log_loss([scores, scores], [{}, {}], "video") == pytest.approx(np.log(2))
    none_known = _scores([[0.5, 0.5]], [UNKNOWN_LABEL])
    assert weighted_log_loss([none_known, none_known], [{}, {}], "video") == 0.0


def test_fit_needs_two_networks() -> None:
    one = _scores([[0.6, 0.4]], [0])
    with pytest.raises(TrainError, match="two clip networks, got 3"):
        fit_head_weights([one, one, one])


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_split(tmp_path_factory)


def _network(split: Path, out: Path, arch: str, clip_len: int = 4) -> Path:
    """An untrained person-clip CSN saved as the recipe saves it (real checkpoint, real init)."""
    config = CsnConfig(
        data=split, out=out, epochs=1, batch_size=2, lr=0.01, arch=arch, clips="person",
        clip_len=clip_len, frame_interval=2, cache_step=1, short_side=32, crop_size=32,
    )  # fmt: skip
    seed_everything(0)
    vocabulary = build_vocabulary(video_labels(read_gt(split)))
    return save_networks(build_network(config, vocabulary), config, vocabulary, {})[0]


def test_ensemble_scores_real_networks_on_a_real_split(tiny_split: Path, tmp_path: Path) -> None:
    ir = _network(tiny_split, tmp_path / "ir", "ir_csn_tiny")
    ip = _network(tiny_split, tmp_path / "ip", "ip_csn_tiny")
    settings = [ClipNetworkSettings(weights=ir), ClipNetworkSettings(weights=ip)]
    scores = ensemble_scores(settings, tiny_split, num_clips=2)
    labelled = sorted(read_gt(tiny_split).labels)
    for score in scores:
        assert sorted(score.videos) == labelled
        for head, probabilities in score.probabilities.items():
            assert probabilities.shape[0] == len(labelled), head
            np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    assert not np.allclose(scores[0].probabilities["video"], scores[1].probabilities["video"])
    fitted = fit_head_weights(scores)
    assert all(first + second == pytest.approx(1.0) for first, second in
               zip(fitted[0].values(), fitted[1].values(), strict=True))  # fmt: skip


def test_ensemble_scores_refuses_networks_cut_differently(tiny_split: Path, tmp_path: Path) -> None:
    four = _network(tiny_split, tmp_path / "four", "ir_csn_tiny")
    two = _network(tiny_split, tmp_path / "two", "ir_csn_tiny", clip_len=2)
    settings = [ClipNetworkSettings(weights=four), ClipNetworkSettings(weights=two)]
    with pytest.raises(TrainError, match="trained on different clips"):
        ensemble_scores(settings, tiny_split)
