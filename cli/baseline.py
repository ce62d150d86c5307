"""``run.py baseline --train DIR --test DIR --out DIR``: the model-free part-state baselines.

Writes a prediction that guesses the part states: ``--mode prior`` (default) from the training
set's most frequent state per (action, part type), ``--mode video-labels`` from each test video's
own part labels (`tps.labels`). Boxes and actions are the test ground truth's unless ``--boxes``
takes the humans and parts of a prediction (a detector's) and ``--action most-frequent`` predicts
the training set's most frequent action: the report's prior baseline, with no model for the action.
``--action boxes`` keeps the ``--boxes`` prediction's action and replaces only its states: the
parser without the part-label transform, from a run with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tps.formats import PRED_PART_FILE, PRED_VIDEO_FILE, read_gt, read_pred, write_pred
from tps.labels import BASELINE_ACTIONS, BASELINE_MODES, baseline


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `baseline` command."""
    parser = subparsers.add_parser("baseline", help="write a prior / video-label baseline")
    parser.add_argument("--train", type=Path, required=True, help="training ground truth dir")
    parser.add_argument("--test", type=Path, required=True, help="test ground truth dir")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--mode", choices=BASELINE_MODES, default=BASELINE_MODES[0])
    parser.add_argument(
        "--boxes", type=Path, help="take humans and part boxes from this prediction"
    )
    parser.add_argument(
        "--action", choices=BASELINE_ACTIONS, default=BASELINE_ACTIONS[0], help="video labels"
    )
    parser.set_defaults(handler=_baseline)


def _baseline(args: argparse.Namespace) -> int:
    boxes = None if args.boxes is None else read_pred(args.boxes)
    prediction = baseline(
        read_gt(args.train), read_gt(args.test), args.mode, boxes=boxes, action=args.action
    )
    write_pred(args.out, prediction)
    print(f"wrote {args.out / PRED_VIDEO_FILE} and {args.out / PRED_PART_FILE}")
    return 0
