"""How fast the exact Kinetics-TPS scorer runs on a test-set-sized submission.

Generates, from a seed and in memory, ground truth with VIDEOS x FRAMES annotated frames x HUMANS
humans x 10 parts and a prediction that jitters every box and gets some states and labels wrong,
then times `tps.scorer.evaluate` (median of a few repeats). Prints one JSON line and optionally
writes it to a file:

    .venv/bin/python -m bench.scorer_speed --videos 1000 --out /tmp/scorer_speed.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.common import emit
from tps.formats import Box, GroundTruth, GtHuman, GtPart, PredHuman, Prediction, PredPart
from tps.scorer import evaluate
from tps.vocabulary import ACTIONS, PARTS, STATES, frame_key

FRAME_SIZE = (1280.0, 720.0)
HUMAN_SIZE = (160.0, 360.0)
PART_SIZE = 48.0
JITTER_PX = 8.0
WRONG_STATE_RATE = 0.2
WRONG_LABEL_RATE = 0.15
TWO_PROPOSAL_RATE = 0.1


def _box(x: float, y: float, width: float, height: float) -> Box:
    return (x, y, x + width, y + height)


def _jitter(rng: np.random.Generator, box: Box) -> Box:
    dx1, dy1, dx2, dy2 = rng.uniform(-JITTER_PX, JITTER_PX, 4)
    x1, y1, x2, y2 = box
    return (x1 + dx1, y1 + dy1, max(x1 + dx1, x2 + dx2), max(y1 + dy1, y2 + dy2))


def make_data(
    videos: int, frames: int, humans: int, seed: int = 0
) -> tuple[GroundTruth, Prediction]:
    """A random ground truth and a noisy prediction of it (boxes in 1280x720 frames)."""
    rng = np.random.default_rng(seed)
    gt_labels: dict[str, str] = {}
    pred_labels: dict[str, str] = {}
    gt_parts: dict[str, dict[str, list[GtHuman]]] = {}
    pred_parts: dict[str, dict[str, list[PredHuman]]] = {}
    for v in range(videos):
        video = f"video_{v:05d}"
        action = ACTIONS[v % len(ACTIONS)]
        gt_labels[video] = action
        wrong = rng.random() < WRONG_LABEL_RATE
        pred_labels[video] = ACTIONS[(v + 1) % len(ACTIONS)] if wrong else action
        gt_parts[video], pred_parts[video] = gt_frames, pred_frames = {}, {}
        for f in range(frames):
            key = frame_key(f * 5)
            gt_frames[key], pred_frames[key] = gt_humans, pred_humans = [], []
            for h in range(humans):
                x = h * FRAME_SIZE[0] / humans + rng.uniform(0, 40)
                y = rng.uniform(0, FRAME_SIZE[1] - HUMAN_SIZE[1])
                human_box = _box(x, y, *HUMAN_SIZE)
                gt_human_parts: dict[str, GtPart] = {}
                pred_human_parts: dict[str, PredPart] = {}
                for p, name in enumerate(PARTS):
                    part_box = _box(x + (p % 3) * PART_SIZE, y + p * 30.0, PART_SIZE, PART_SIZE)
                    verb = STATES[int(rng.integers(len(STATES)))]
                    gt_human_parts[name] = GtPart(part_box, verb)
                    guess = STATES[0] if rng.random() < WRONG_STATE_RATE else verb
                    boxes = [_jitter(rng, part_box)]
                    verbs = [guess]
                    if rng.random() < TWO_PROPOSAL_RATE:
                        boxes.append(_jitter(rng, part_box))
                        verbs.append(verb)
                    pred_human_parts[name] = PredPart(tuple(boxes), tuple(verbs))
                gt_humans.append(GtHuman(human_box, gt_human_parts))
                pred_humans.append(PredHuman(_jitter(rng, human_box), pred_human_parts))
    return GroundTruth(gt_labels, gt_parts), Prediction(pred_labels, pred_parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the scorer; print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=60, help="annotated frames per video")
    parser.add_argument("--humans", type=int, default=3, help="humans per frame")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    gt, pred = make_data(args.videos, args.frames, args.humans, args.seed)
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = evaluate(gt, pred)
        seconds.append(time.perf_counter() - start)
    figures = {
        "videos": args.videos,
        "frames_per_video": args.frames,
        "humans_per_frame": args.humans,
        "parts_per_human": len(PARTS),
        "repeats": args.repeats,
        "seconds": round(statistics.median(seconds), 3),
        "seconds_all": [round(s, 3) for s in seconds],
        "score": result.score,
    }
    emit(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
