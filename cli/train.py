"""``run.py train {person,pose,parts,csn} -c CONFIG [--resume] [--out DIR] [--data DIR]``.

Loads the recipe's YAML config (`training.recipes.RECIPES`), lets ``--out`` / ``--data`` replace
the file's ``out`` / ``data`` before validation (so a missing split is reported for the path
actually used), trains, and prints the final metrics as one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.config import RawConfig, apply_overrides, load_config, validate
from training.common import TrainError
from training.data import DataError
from training.recipes import RECIPES

TrainErrors = (TrainError, DataError)
"""The training subsystem's user-facing errors (bad data, failed resume, diverging loss)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` command."""
    parser = subparsers.add_parser("train", help="train a network on a synthetic split")
    kinds = "; ".join(f"{name}: {recipe.help}" for name, recipe in sorted(RECIPES.items()))
    parser.add_argument("kind", choices=sorted(RECIPES), help=f"which network to train ({kinds})")
    parser.add_argument("-c", "--config", type=Path, required=True, help="recipe YAML config")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--out", type=Path, help="output directory (replaces the config's out)")
    parser.add_argument("--data", type=Path, help="training split (replaces the config's data)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    recipe = RECIPES[args.kind]
    raw = apply_overrides(load_config(args.config, RawConfig).root, args.set, str(args.config))
    overrides = {key: str(getattr(args, key)) for key in ("out", "data") if getattr(args, key)}
    source = str(args.config)
    if overrides:
        source += " (with " + ", ".join(f"--{key}" for key in overrides) + ")"
    config = validate(recipe.config_model, {**raw, **overrides}, source)
    metrics = recipe.run(config, args.resume)
    print(json.dumps({"kind": args.kind, "out": str(config.out), **metrics}, default=str))
    return 0
