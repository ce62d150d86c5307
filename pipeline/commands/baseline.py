"""``run.py baseline --train DIR --test DIR --out DIR``: the model-free part-state baselines.

Writes a prediction that copies the test ground truth's actions and boxes and guesses only the
part states: ``--mode prior`` (default) from the training set's most frequent state per (action,
part type), ``--mode video-labels`` from each test video's own part labels (`tps.labels`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tps.formats import PRED_PART_FILE, PRED_VIDEO_FILE, read_gt, write_pred
from tps.labels import BASELINE_MODES, baseline


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `baseline` command."""
    parser = subparsers.add_parser("baseline", help="write a prior / video-label baseline")
    parser.add_argument("--train", type=Path, required=True, help="training ground truth dir")
    parser.add_argument("--test", type=Path, required=True, help="test ground truth dir")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--mode", choices=BASELINE_MODES, default=BASELINE_MODES[0])
    parser.set_defaults(handler=_baseline)


def _baseline(args: argparse.Namespace) -> int:
    prediction = baseline(read_gt(args.train), read_gt(args.test), args.mode)
    write_pred(args.out, prediction)
    print(f"wrote {args.out / PRED_VIDEO_FILE} and {args.out / PRED_PART_FILE}")
    return 0
