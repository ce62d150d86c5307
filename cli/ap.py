"""``run.py ap {person,parts} --weights W --split DIR``: a detector's AP50 on a split.

Person AP50 on every annotated frame; part AP50 (mean over the 10 parts) on the crops of every
annotated person, painted with ground-truth keypoints, or with a pose network's (``--pose``) as
the parser does. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.parts import evaluate_parts
from training.person import evaluate_person


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ap", help="AP50 of a person or part detector on a split")
    parser.add_argument("kind", choices=("person", "parts"))
    parser.add_argument("--weights", type=Path, required=True, help="detector checkpoint")
    parser.add_argument("--split", type=Path, required=True, help="split with ground truth")
    parser.add_argument("--pose", type=Path, help="parts: keypoints from this pose checkpoint")
    parser.add_argument("--max-videos", type=int, help="only the first N videos")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.kind == "person":
        result = evaluate_person(args.weights, args.split, max_videos=args.max_videos)
    else:
        result = evaluate_parts(
            args.weights, args.split, max_videos=args.max_videos, pose_weights=args.pose
        )
    print(json.dumps({"kind": args.kind, "weights": str(args.weights), **result}))
    return 0
