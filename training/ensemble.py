"""Per-head weights of the clip ensemble, fitted on a validation split.

The clip parser averages, per head, the probabilities of the CSNs that have it with per-network
weights (`parsing.clip_parser.ClipEnsemble`). The report's weights (video 7:1 ip:ir, ...) were
fitted to its networks; ours differ, so the weights are fitted again: each network scores every
video of the split once (`training.csn.score_videos`: 7 clips spread over each person, the
persons averaged, the parser's whole-stream decision), then for each head a grid over the share of
the first network picks the one with the best video accuracy. A validation split of 100 videos
often ties accuracy over most of the grid (both networks right on 97 of them), so ties go to the
share with the lowest log loss of the true class, which still sees how sure the mixture is; only
where that ties too (identical networks) the share nearest equal weights wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parsing.clip_parser import ClipEnsemble
from parsing.networks import Network, load_network
from parsing.settings import ClipNetworkSettings
from training.common import TrainError
from training.csn import UNKNOWN_LABEL, CsnConfig, VideoScores, load_videos, score_videos
from training.data import Split

FINAL_CLIPS = 7
"""Clips per person, as the parser's whole-stream decision (`tpsclip` final-clips)."""
GRID_STEPS = 20
"""The first network's share is tried at 0, 1/20, ..., 1."""
LOG_LOSS_DECIMALS = 9
"""Log losses equal to this many decimals tie (identical networks differ only by rounding)."""
PROBABILITY_FLOOR = 1e-12
"""A true class given probability 0 costs -log(1e-12), not infinity."""


def _clip_config(network: Network, split: Path) -> CsnConfig:
    """The recipe `network` was trained with, pointed at `split` (its clip geometry)."""
    if "config" not in network.metadata:
        raise TrainError(f"clip network {network.arch}: its checkpoint has no training config")
    stored = json.loads(network.metadata["config"])
    return CsnConfig.model_validate({**stored, "data": split, "val_data": None, "pretrained": None})


def ensemble_scores(
    settings: Sequence[ClipNetworkSettings], split: Path, num_clips: int = FINAL_CLIPS
) -> list[VideoScores]:
    """Each network's `VideoScores` on the labelled videos of `split` (GT person boxes).

    Raises:
        TrainError: the networks were trained on different clip geometries (the parser cuts one
            clip for all of them).
    """
    networks = [load_network(network) for network in settings]
    ensemble = ClipEnsemble(networks, [network.head_weights for network in settings])
    configs = [_clip_config(network, split) for network in networks]
    geometry = {(c.clip_len, c.frame_interval, c.crop_size, c.short_side, c.clips) for c in configs}
    if len(geometry) > 1:
        raise TrainError(
            f"clip networks {[str(s.weights) for s in settings]} were trained on different clips"
            f" (clip_len, frame_interval, crop, short side, clips): {sorted(geometry)}"
        )
    videos = load_videos(Split.open(split), ensemble.classes, configs[0])
    return [score_videos(network.run, videos, configs[0], num_clips) for network in networks]


def fit_head_weights(
    scores: Sequence[VideoScores], steps: int = GRID_STEPS
) -> list[dict[str, float]]:
    """Per head, the two networks' weights (shares summing to 1) with the best video accuracy.

    Returns:
        one {head: weight} per network, for `ClipNetworkSettings.head_weights`.
    """
    if len(scores) != 2:
        raise TrainError(f"fitting ensemble weights needs two clip networks, got {len(scores)}")
    shares = np.linspace(0.0, 1.0, steps + 1)
    fitted: list[dict[str, float]] = [{}, {}]
    for head in scores[0].probabilities:

        def rank(share: float, head: str = head) -> tuple[float, float, float]:
            """Accuracy first, then the lower log loss, then the share nearer equal weights."""
            weights = [{head: share}, {head: 1.0 - share}]
            loss = round(weighted_log_loss(scores, weights, head), LOG_LOSS_DECIMALS)
            return weighted_accuracy(scores, weights, head), -loss, -abs(share - 0.5)

        best = float(max(shares, key=rank))
        fitted[0][head] = round(best, 3)
        fitted[1][head] = round(1.0 - best, 3)
    return fitted


def mixed_probabilities(
    scores: Sequence[VideoScores], weights: Sequence[dict[str, float]], head: str
) -> np.ndarray:
    """(V, K) probabilities of `head`, the networks averaged by `weights` (missing: 1.0)."""
    per_network = [w.get(head, 1.0) for w in weights]
    total = sum(per_network)
    if total <= 0:
        raise TrainError(f"head {head!r}: the ensemble weights sum to {total}")
    return sum(w * s.probabilities[head] for w, s in zip(per_network, scores, strict=True)) / total


def weighted_accuracy(
    scores: Sequence[VideoScores], weights: Sequence[dict[str, float]], head: str
) -> float:
    """Video accuracy of `head` with the networks averaged by `weights` (missing: 1.0)."""
    return scores[0].accuracy(head, mixed_probabilities(scores, weights, head))


def weighted_log_loss(
    scores: Sequence[VideoScores], weights: Sequence[dict[str, float]], head: str
) -> float:
    """Mean negative log probability of the true class of `head` under the weighted mixture,
    over the videos whose class the networks know (0.0 when there are none)."""
    targets = scores[0].targets[head]
    known = targets != UNKNOWN_LABEL
    if not known.any():
        return 0.0
    mixed = mixed_probabilities(scores, weights, head)[known, targets[known]]
    return float(-np.log(np.clip(mixed, PROBABILITY_FLOOR, 1.0)).mean())
