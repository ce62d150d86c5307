"""``run.py decompose --gt DIR --pred DIR``: how much score each component of a prediction costs.

Scores the prediction as it is, with one component swapped for the ground truth's at a time
(`tps.oracle.swap`: action, human boxes, part boxes, states) and with all four
(`tps.oracle.swap_all`), and prints a markdown table of score, video accuracy and mean PSC per row.
``--ci`` adds the 95% bootstrap interval of each score over videos (as ``eval --ci``), ``--json
FILE`` writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from tps.formats import FormatError, GroundTruth, Prediction, read_gt, read_pred
from tps.oracle import ALL_SWAPS, OracleComponent, swap_all
from tps.scorer import ScoreResult, evaluate

ROWS: tuple[tuple[str, tuple[OracleComponent, ...]], ...] = (
    ("prediction", ()),
    ("+ GT action", ("action",)),
    ("+ GT human boxes", ("humans",)),
    ("+ GT part boxes", ("parts",)),
    ("+ GT states", ("states",)),
    ("all four", ALL_SWAPS),
)
"""Table row -> the components swapped for the ground truth's, in the order applied."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `decompose` command."""
    parser = subparsers.add_parser(
        "decompose", help="score a prediction with each component swapped for the ground truth"
    )
    parser.add_argument("--gt", type=Path, required=True, help="directory with gt_*_result.json")
    parser.add_argument(
        "--pred", type=Path, required=True, help="directory with pred_*_result.json"
    )
    parser.add_argument(
        "--ci", action="store_true", help="add a 95%% bootstrap interval of each score over videos"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures here")
    parser.set_defaults(handler=_decompose)


@dataclass(frozen=True)
class _Row:
    """One table row: the components swapped and the score of the swapped prediction."""

    name: str
    swapped: tuple[OracleComponent, ...]
    result: ScoreResult
    interval: tuple[float, float] | None

    def cells(self) -> list[str]:
        """The row's markdown cells: name, score, video accuracy, mean PSC[, interval]."""
        figures = (self.result.score, self.result.video_accuracy, self.result.mean_psc)
        cells = [self.name, *(f"{figure:.4f}" for figure in figures)]
        if self.interval is not None:
            cells.append(f"{self.interval[0]:.4f}-{self.interval[1]:.4f}")
        return cells

    def as_dict(self) -> dict[str, object]:
        """The row's figures for ``--json``, the interval as ``[low, high]`` when computed."""
        figures: dict[str, object] = {
            "row": self.name,
            "swapped": list(self.swapped),
            "score": self.result.score,
            "video_accuracy": self.result.video_accuracy,
            "mean_psc": self.result.mean_psc,
        }
        if self.interval is not None:
            figures["interval"] = list(self.interval)
        return figures


def _rows(gt: GroundTruth, prediction: Prediction, ci: bool) -> list[_Row]:
    """Score every `ROWS` entry; the unswapped prediction first, so bad input fails as in eval."""
    rows = []
    for name, components in ROWS:
        result = evaluate(gt, swap_all(prediction, gt, components))
        rows.append(_Row(name, components, result, result.interval() if ci else None))
    return rows


def _table(rows: list[_Row], ci: bool) -> str:
    """The rows as a markdown table, figures to 4 decimals."""
    header = ["", "score", "video accuracy", "mean PSC", *(["95% interval"] if ci else [])]
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    lines += [f"| {' | '.join(row.cells())} |" for row in rows]
    return "\n".join(lines)


def _decompose(args: argparse.Namespace) -> int:
    gt = read_gt(args.gt)
    rows = _rows(gt, read_pred(args.pred), args.ci)
    print(_table(rows, args.ci))
    if args.json is not None:
        figures = {"videos": len(gt.labels), "rows": [row.as_dict() for row in rows]}
        text = json.dumps(figures, indent=1)
        try:
            args.json.write_text(text + "\n")
        except OSError as error:
            raise FormatError(f"{args.json}: cannot write ({error.strerror})") from error
    return 0
