"""``run.py eval-pose``: the parser's person and pose stages on real annotated people.

    python run.py eval-pose [-c CONFIG ...] [--real ../shared/real] [--out out/eval-pose.json]

Builds the person and pose stages from each config's ``parser`` section as the pipeline builds
them, runs them on every image of every folder of ``--real`` (`parsing.pose_eval` reads the
COCO-format sets) and prints, per folder and config: annotated people, people found at IoU 0.5
(one-to-one), recall, the person boxes the stages gave (annotated or not: the photos have
unannotated people too, so boxes beyond those found are not all false), PCK@0.2 of the annotated
box diagonal over all annotated people and over the matched ones, and the median milliseconds per
image. Default: the synthetic set
(``configs/demo.yaml``) beside the real set (``configs/camera.yaml``). The same figures go to
``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np

from parsing.frame_parser import person_detector, pose_estimator
from parsing.networks import load_network
from parsing.pose_eval import PersonPose, PoseScore, read_sets, score_sets
from parsing.settings import ParserSettings
from pipeline.config import CONFIGS_DIR
from pipeline.settings import load_parser_settings

log = logging.getLogger(__name__)

DEFAULT_CONFIGS = (CONFIGS_DIR / "demo.yaml", CONFIGS_DIR / "camera.yaml")
DEFAULT_REAL = Path("../shared/real")
DEFAULT_OUT = Path("out/eval-pose.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `eval-pose` command."""
    parser = subparsers.add_parser(
        "eval-pose",
        help="person recall and keypoint PCK on real annotated people",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        action="append",
        help="pipeline YAML whose parser is measured (repeatable; default: demo and camera)",
    )
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="annotated set folders")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of every config, e.g. parser.person.score_threshold=0.2",
    )
    parser.set_defaults(handler=handle)


@contextmanager
def person_pose(settings: ParserSettings) -> Iterator[PersonPose]:
    """The person and pose stages the pipeline builds from ``settings``, on one image at a time."""
    networks = [load_network(settings.person), load_network(settings.pose)]
    person = person_detector(networks[0], settings.person)
    pose = pose_estimator(networks[1], settings.pose)

    def run(frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (persons,) = pose([frame_rgb], person([frame_rgb]))
        return persons.boxes_xyxy, persons.keypoints_xys

    try:
        yield run
    finally:
        for network in networks:
            network.engine.close()


def _cell(score: PoseScore) -> str:
    return (
        f"{score.found}/{score.people} ({score.recall:.2f}) | {score.predicted} | "
        f"{score.pck:.2f} | {score.pck_matched:.2f} | {1000 * float(np.median(score.seconds)):.0f}"
    )


def table(results: dict[str, dict[str, PoseScore]]) -> str:
    """A Markdown table: one row per folder (and all), five columns per config."""
    configs = list(results)
    folders = list(next(iter(results.values())))
    header = "| folder | " + " | ".join(
        f"{name}: found (recall) | boxes | PCK@0.2 | PCK matched | ms/image" for name in configs
    )
    lines = [header + " |", "|" + " --- |" * (1 + 5 * len(configs))]
    for folder in [*folders, "all"]:
        cells = []
        for name in configs:
            scores = results[name]
            score = sum(scores.values(), PoseScore()) if folder == "all" else scores[folder]
            cells.append(_cell(score))
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(
    configs: Sequence[Path],
    real: Path,
    overrides: Sequence[str] = (),
    build: Callable[[ParserSettings], AbstractContextManager[PersonPose]] = person_pose,
) -> dict[str, dict[str, PoseScore]]:
    """Scores per config path and folder; every config is checked before any network runs."""
    settings = {str(path): load_parser_settings(path, overrides) for path in configs}
    sets = read_sets(real)
    results = {}
    for name, parser in settings.items():
        log.info("eval-pose: %s on %s", name, real)
        with build(parser) as run:
            results[name] = score_sets(run, sets)
    return results


def handle(args: argparse.Namespace) -> int:
    """Measure, print the table, write the JSON."""
    configs = args.config or list(DEFAULT_CONFIGS)
    results = evaluate(configs, args.real, args.set)
    print(table(results))
    report = {
        "real": str(args.real),
        "overrides": args.set,
        "configs": {
            name: {
                "folders": {folder: score.as_dict() for folder, score in scores.items()},
                "all": sum(scores.values(), PoseScore()).as_dict(),
            }
            for name, scores in results.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    log.info("eval-pose: wrote %s", args.out)
    return 0
