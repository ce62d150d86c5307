"""``run.py fit-ensemble --val DIR [-c CONFIG] [--write]``: the clip ensemble's per-head weights.

Scores the config's two clip networks (``parser.clip.networks``) on the labelled videos of a
validation split, fits each head's weights there (`training.ensemble.fit_head_weights`; never fit
them on the test split) and prints, per head, the video accuracy of each network alone, of the
config's weights and of the fitted ones, the log loss of the last two (it decides accuracy ties),
then the fitted weights as one JSON line. With ``--write`` the config's ``head_weights:`` lines
(one per network, on one line each) are replaced by the fitted weights; the rest of the file,
comments included, is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from parsing.settings import ClipNetworkSettings
from pipeline.config import DEMO_CONFIG, ConfigError, RawConfig, load_config, validate
from pipeline.settings import PipelineConfig
from training.ensemble import (
    FINAL_CLIPS,
    ensemble_scores,
    fit_head_weights,
    weighted_accuracy,
    weighted_log_loss,
)

HEAD_WEIGHTS_LINE = re.compile(r"^(?P<indent>[ \t-]*)head_weights:\s*\{[^{}]*\}[ \t]*(#.*)?$")
"""A one-line flow mapping ``head_weights: {video: 1.0, ...}`` (a trailing comment is dropped)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `fit-ensemble` command."""
    parser = subparsers.add_parser(
        "fit-ensemble",
        help="fit the clip ensemble's per-head weights on a validation split",
        description=__doc__,
    )
    parser.add_argument("--val", type=Path, required=True, help="validation split (not test)")
    parser.add_argument("-c", "--config", type=Path, default=DEMO_CONFIG, help="parser config")
    parser.add_argument(
        "--clips", type=int, default=FINAL_CLIPS, help="clips per person (the parser's final)"
    )
    parser.add_argument(
        "--write", action="store_true", help="write the fitted weights into the config"
    )
    parser.set_defaults(handler=handle)


def clip_networks(config: Path) -> list[ClipNetworkSettings]:
    """The clip networks of a pipeline config, their paths resolved beside the file."""
    raw = load_config(config, RawConfig, PipelineConfig).root
    networks = ((raw.get("parser") or {}).get("clip") or {}).get("networks")
    if not networks:
        raise ConfigError(f"{config}: parser.clip.networks is missing or empty")
    return [
        validate(ClipNetworkSettings, network, f"{config} parser.clip.networks.{index}")
        for index, network in enumerate(networks)
    ]


def write_head_weights(config: Path, weights: list[dict[str, float]]) -> None:
    """Replace the config's one-line ``head_weights:`` entries, in order, by `weights`."""
    lines = config.read_text().splitlines(keepends=True)
    found = [index for index, line in enumerate(lines) if HEAD_WEIGHTS_LINE.match(line.rstrip())]
    if len(found) != len(weights):
        raise ConfigError(
            f"{config}: expected {len(weights)} one-line 'head_weights: {{...}}' entries (one per"
            f" clip network), found {len(found)}"
        )
    for index, per_head in zip(found, weights, strict=True):
        indent = HEAD_WEIGHTS_LINE.match(lines[index].rstrip())["indent"]
        pairs = ", ".join(f"{head}: {value:g}" for head, value in per_head.items())
        lines[index] = f"{indent}head_weights: {{{pairs}}}\n"
    config.write_text("".join(lines))


def handle(args: argparse.Namespace) -> int:
    if args.clips < 1:
        raise ConfigError(f"--clips: expected at least 1, got {args.clips}")
    networks = clip_networks(args.config)
    scores = ensemble_scores(networks, args.val, args.clips)
    fitted = fit_head_weights(scores)
    configured = [network.head_weights for network in networks]
    names = [network.weights.stem for network in networks]
    print(
        f"{'head':6} "
        + " ".join(f"{name:>12}" for name in names)
        + "   config   fitted   (log loss: config fitted)"
    )
    for head in fitted[0]:
        alone = [score.accuracy(head) for score in scores]
        print(
            f"{head:6} "
            + " ".join(f"{value:12.3f}" for value in alone)
            + f"   {weighted_accuracy(scores, configured, head):6.3f}"
            + f"   {weighted_accuracy(scores, fitted, head):6.3f}"
            + f"   {weighted_log_loss(scores, configured, head):8.4f}"
            + f" {weighted_log_loss(scores, fitted, head):6.4f}"
        )
    print(json.dumps({"videos": len(scores[0].videos), "head_weights": fitted}))
    if args.write:
        write_head_weights(args.config, fitted)
        print(f"wrote the fitted head weights into {args.config}")
    return 0
