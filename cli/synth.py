"""``run.py synth --out DIR --videos N --seed S``: render a synthetic Kinetics-TPS split.

Writes H.264 videos, ``gt_vid_result.json``, ``gt_part_result.json``, ``keypoints.json`` and, with
``--preview``, a contact sheet ``preview.png`` (see `tps.synth.dataset`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tps.synth.dataset import write_split


def _size(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT``, e.g. ``320x240``."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}")
    return int(width), int(height)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `synth` command."""
    parser = subparsers.add_parser("synth", help="render a synthetic split with ground truth")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--videos", type=int, required=True, help="number of videos")
    parser.add_argument("--seed", type=int, required=True, help="seed of the split")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--frames", type=int, default=64, help="frames per video")
    parser.add_argument("--size", type=_size, default=(320, 240), help="WIDTHxHEIGHT, even")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--preview", action="store_true", help="also write preview.png")
    parser.set_defaults(handler=_synth)


def _synth(args: argparse.Namespace) -> int:
    summary = write_split(
        args.out,
        videos=args.videos,
        seed=args.seed,
        split=args.split,
        frames=args.frames,
        size=args.size,
        fps=args.fps,
        preview=args.preview,
    )
    counts = ", ".join(f"{action} {n}" for action, n in sorted(summary.action_counts().items()))
    print(
        f"wrote {len(summary.labels)} videos ({summary.frames} frames, "
        f"{summary.annotated_humans} annotated humans) to {summary.directory} "
        f"in {summary.seconds:.1f} s: {counts}"
    )
    return 0
