"""``run.py predict --videos DIR --out DIR [-c CONFIG]``: Kinetics-TPS prediction files for videos.

Offline prediction runs through the streaming pipeline in offline mode (one code path): every
video is a stream named by its file name without extension, every frame is decoded and parsed,
and the recorder writes the official prediction files. The video's action is the whole-video
decision from clips spread evenly over it (7 by default, as in the report); every part of every
annotated frame takes the state of its part type from the predicted part labels. A video that
fails to decode is reported and left out; all the others are still written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.run import execute
from pipeline.config import (
    DEMO_CONFIG,
    ConfigError,
    RawConfig,
    apply_overrides,
    load_config,
    validate,
)
from pipeline.settings import PipelineConfig

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")
DEFAULT_CONCURRENT_STREAMS = 2
NO_WAIT = {"wait_for_subscriber_s": 0}
"""Offline prediction records in process: no subscriber to wait for."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="write Kinetics-TPS predictions for a folder of videos", description=__doc__
    )
    parser.add_argument("--videos", type=Path, required=True, help="folder of videos (or a split)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the prediction files")
    parser.add_argument("-c", "--config", type=Path, default=DEMO_CONFIG, help="parser config")
    parser.add_argument(
        "--streams", type=int, default=DEFAULT_CONCURRENT_STREAMS, help="videos parsed at once"
    )
    parser.add_argument("--gt", type=Path, help="score against this ground truth at the end")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    parser.add_argument("--limit", type=int, help="only the first N videos (sorted by name)")
    parser.set_defaults(handler=handle)


def videos_in(folder: Path) -> list[Path]:
    """The videos of a folder, or of its `videos/` subfolder (a synthetic split), sorted."""
    if not folder.is_dir():
        raise ConfigError(f"--videos {folder}: not a directory")
    if (folder / "videos").is_dir():
        folder = folder / "videos"
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise ConfigError(f"--videos {folder}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    return videos


def handle(args: argparse.Namespace) -> int:
    # its own sources are replaced, not checked; its paths resolve beside it
    raw = load_config(args.config, RawConfig, PipelineConfig).root
    data = apply_overrides(raw, args.set, str(args.config))
    videos = videos_in(args.videos)[: args.limit]
    data.update(
        mode="offline",
        sources=[{"id": video.stem, "uri": str(video)} for video in videos],
        output={"dir": args.out, "annotated_video": False, "predictions": True},
        publish={**data.get("publish", {}), "endpoint": "tcp://127.0.0.1:*"} | NO_WAIT,
        metrics={**data.get("metrics", {}), "enabled": False},
        ground_truth=args.gt,
        generate=None,
        concurrent_streams=args.streams,
    )
    return execute(validate(PipelineConfig, data, f"{args.config} (for predict)"))
