"""``run.py eval --gt DIR --pred DIR``: the official Kinetics-TPS score of a prediction.

Prints ``score 0.xxxx  video accuracy 0.xxxx  mean PSC 0.xxxx`` (with ``--ci``, a 95% bootstrap
interval over videos, `tps.scorer.ScoreResult.interval`) or, with ``--json``, the full result
(`tps.scorer.ScoreResult.as_dict`). Thresholds default to the official 0.5 (human, strict) and
0.3 (part, inclusive).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tps.formats import read_gt, read_pred
from tps.scorer import HUMAN_IOU, PART_IOU, evaluate


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval` command."""
    parser = subparsers.add_parser("eval", help="score a Kinetics-TPS prediction")
    parser.add_argument("--gt", type=Path, required=True, help="directory with gt_*_result.json")
    parser.add_argument(
        "--pred", type=Path, required=True, help="directory with pred_*_result.json"
    )
    parser.add_argument(
        "--human-iou", type=float, default=HUMAN_IOU, help="human match IoU, strictly greater"
    )
    parser.add_argument(
        "--part-iou", type=float, default=PART_IOU, help="part localisation IoU, at least"
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument(
        "--ci", action="store_true", help="add a 95%% bootstrap interval of the score over videos"
    )
    parser.set_defaults(handler=_eval)


def _eval(args: argparse.Namespace) -> int:
    result = evaluate(
        read_gt(args.gt), read_pred(args.pred), human_iou=args.human_iou, part_iou=args.part_iou
    )
    if args.json:
        print(result.to_json())
    else:
        line = (
            f"score {result.score:.4f}  video accuracy {result.video_accuracy:.4f}"
            f"  mean PSC {result.mean_psc:.4f}"
        )
        if args.ci:
            low, high = result.interval()
            line += f"  95% interval {low:.4f}-{high:.4f} ({len(result.per_video)} videos)"
        print(line)
    return 0
