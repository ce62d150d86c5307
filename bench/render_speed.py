"""How fast the synthetic world renders (encoding excluded), on one core.

Renders FRAMES consecutive frames of several videos per people count (1, 2, 3) at the given size,
once as images only (`SynthVideo.frame`) and once with annotations (`SynthVideo.render`: boxes,
keypoints, part states). Reports frames per second by process CPU time (what one core does,
whatever else the machine runs) and by wall clock. Prints one JSON line, optionally writes it:

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.render_speed --out /tmp/render_speed.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import emit
from tps.synth import SYNTH_ACTIONS, SynthVideo

PEOPLE_COUNTS = (1, 2, 3)


def _time(videos: Sequence[SynthVideo], frames: int, draw: Callable[[SynthVideo, int], object]):
    """(cpu seconds, wall seconds) to draw `frames` frames of every video."""
    cpu, wall = time.process_time(), time.perf_counter()
    for video in videos:
        for index in range(frames):
            draw(video, index)
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: Sequence[str] | None = None) -> int:
    """Time rendering; print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=100, help="frames per video")
    parser.add_argument("--videos", type=int, default=len(SYNTH_ACTIONS), help="per people count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    figures: dict[str, object] = {"size": [width, height], "frames_per_video": args.frames}
    for people in PEOPLE_COUNTS:
        videos = [
            SynthVideo(args.seed + k, (width, height), people=people, action=action)
            for k, action in enumerate(
                SYNTH_ACTIONS[k % len(SYNTH_ACTIONS)] for k in range(args.videos)
            )
        ]
        count = len(videos) * args.frames
        for name, draw in (
            ("frame", lambda video, index: video.frame(index)),
            ("render", lambda video, index: video.render(index)),
        ):
            cpu, wall = _time(videos, args.frames, draw)
            figures[f"{name}_fps_cpu_people{people}"] = round(count / cpu, 1)
            figures[f"{name}_fps_wall_people{people}"] = round(count / wall, 1)
    emit(figures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
