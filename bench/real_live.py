"""One real 640x480 stream in live mode for a fixed time: the real set beside the synthetic set.

    .venv/bin/python -m bench.real_live [--clip ../shared/media/structuralize_demo.mp4]
        [--seconds 20] [--long-sides 192 320] [--max-in-flight 1] [--set parser.KEY=VALUE]
        [--only real ...] [--four-people] [--out out/real_live.json]

The clip plays in a loop, normalised to 640x480 at 30 frames/s, in live mode (the gate: one frame
in flight unless ``--max-in-flight`` says more, the others dropped and counted), through
`pipeline.runner.Runner` exactly as ``run.py run --mode live`` runs it, with no outputs on disk.
Each variant is a config's parser section (``--set`` changes all of them): ``real``
(configs/camera.yaml), ``real@N`` (the same with MultiPose's long side N), ``synthetic``
(configs/demo.yaml: its frame stages and its CSN clip ensemble) and ``synthetic-frames`` (the same
without the clip stage). The variants run one after the other in one process; each is stopped
``--seconds`` after its first frame event. ``--four-people`` plays `four_people_clip` instead.

Reports JSON per variant: frames offered (in at the stamp), parsed (frame events) and dropped
from PLAYING to the stop, parsed frames/s over the timed window (first to last frame event; the
first frame's start-up is left out), end-to-end latency p50/p99 (stamp -> event), people per
frame (mean, max), the milliseconds each element spent per parsed frame, and the process's CPU
milliseconds per parsed frame over the timed window (decoding included; on a shared machine the
wall-clock figures rise with the load, this one much less).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, SHARED_MEDIA, emit, environment  # noqa: E402
from bench.pipeline import ANY_PORT_ENDPOINT, run_pipeline  # noqa: E402
from parsing.events import Event  # noqa: E402
from parsing.settings import ParserSettings  # noqa: E402
from pipeline.config import CAMERA_CONFIG, validate  # noqa: E402
from pipeline.metrics import Metrics  # noqa: E402
from pipeline.runner import Runner  # noqa: E402
from pipeline.settings import (
    PipelineConfig,  # noqa: E402
    load_parser_settings,  # noqa: E402
)
from tps.synth.encode import encode_h264  # noqa: E402
from tps.video import read_frames  # noqa: E402

log = logging.getLogger("bench.real_live")

DEMO_CONFIG = REPO / "configs" / "demo.yaml"
DEFAULT_CLIP = SHARED_MEDIA / "structuralize_demo.mp4"
VIDEO = {"width": 640, "height": 480, "fps": 30}
DEFAULT_SECONDS = 20.0
FOUR_PEOPLE_FPS = 28
PERCENTILES = (50, 99)
MS_PER_S = 1000.0


class TimedRunner(Runner):
    """A `Runner` that counts the people of every frame event and stops itself ``seconds`` after
    the first one (network loading and start-up are not timed)."""

    def __init__(self, config: PipelineConfig, metrics: Metrics, seconds: float) -> None:
        super().__init__(config, metrics)
        self.people: list[int] = []
        self.times_s: list[float] = []
        self.cpu_s: list[float] = []
        self._timer = threading.Timer(seconds, self.stop)
        self._timer.daemon = True

    def _listen(self, event: Event) -> None:
        super()._listen(event)
        if event["type"] == "frame":
            if not self.people:
                self._timer.start()
            self.people.append(len(event["humans"]))
            self.times_s.append(time.monotonic())
            self.cpu_s.append(time.process_time())

    @property
    def cpu_ms_per_frame(self) -> float:
        """Process CPU milliseconds (all threads: decoding every offered frame included) per
        parsed frame over the timed window: what the frame costs whatever else loads the cores."""
        frames = len(self.cpu_s) - 1
        return 1000 * (self.cpu_s[-1] - self.cpu_s[0]) / frames if frames > 0 else 0.0

    @property
    def parsed_fps(self) -> float:
        """Frame events per second from the first to the last (the timed window)."""
        span_s = self.times_s[-1] - self.times_s[0] if self.times_s else 0.0
        return (len(self.times_s) - 1) / span_s if span_s > 0 else 0.0


def four_people_clip(out: Path) -> Path:
    """``skeleton_demo.mp4``'s two men beside their mirror image: four people at 640x480.

    The middle 720x1080 of each 1920x1080 frame (both men) is scaled to 320x480 and set beside
    its mirror image; 72 frames at 28 frames/s, H.264. None of the shared clips has four people
    the real set finds at once, and the pose stage's cost grows with the people.
    """
    halves = (
        np.asarray(
            Image.fromarray(frame[:, 540:1260]).resize((320, 480), Image.Resampling.BILINEAR)
        )
        for frame in read_frames(SHARED_MEDIA / "skeleton_demo.mp4")
    )
    path = out / "four_people.mp4"
    frames = (np.ascontiguousarray(np.concatenate([h, h[:, ::-1]], axis=1)) for h in halves)
    encode_h264(frames, path, FOUR_PEOPLE_FPS)
    return path


def variants(
    camera: Path, demo: Path, long_sides: Sequence[int], overrides: Sequence[str] = ()
) -> dict[str, ParserSettings]:
    """The parser of every variant, by name (see the module docstring); ``overrides``
    (``parser.key=value``) apply to every one."""
    found = {"real": load_parser_settings(camera, overrides)}
    for side in long_sides:
        side_override = f"parser.person.input_long_side={side}"
        found[f"real@{side}"] = load_parser_settings(camera, [*overrides, side_override])
    found["synthetic"] = load_parser_settings(demo, overrides)
    found["synthetic-frames"] = load_parser_settings(demo, [*overrides, "parser.clip=null"])
    return found


def live_config(parser: ParserSettings, clip: Path, max_in_flight: int = 1) -> PipelineConfig:
    """The clip looped as one live 640x480 stream into ``parser``, events to a free port only."""
    data = {
        "mode": "live",
        "sources": [{"id": "s0", "uri": str(clip), "loop": True}],
        "video": VIDEO,
        "live": {"max_in_flight": max_in_flight},
        "parser": parser,
        "publish": {"endpoint": ANY_PORT_ENDPOINT, "wait_for_subscriber_s": 0},
        "metrics": {"enabled": False},
        "output": {"dir": None, "annotated_video": False, "predictions": False},
    }
    return validate(PipelineConfig, data, "real_live pipeline")


def measure(
    parser: ParserSettings, clip: Path, seconds: float, max_in_flight: int = 1
) -> dict[str, Any]:
    """One live run of ``parser`` on the clip; its figures."""
    runners: list[TimedRunner] = []

    def make_runner(config: PipelineConfig, metrics: Metrics) -> Runner:
        runners.append(TimedRunner(config, metrics, seconds))
        return runners[-1]

    run = run_pipeline(live_config(parser, clip, max_in_flight), make_runner)
    timed = runners[0]
    people = np.array(timed.people)
    p50, p99 = (float(v) * MS_PER_S for v in np.percentile(run.latencies_s, PERCENTILES))
    return {
        "frames_offered": sum(timed.frames_in.values()),
        "frames_parsed": run.total_frames,
        "frames_dropped": run.dropped,
        "parsed_fps": round(timed.parsed_fps, 2),
        "seconds_timed": round(timed.times_s[-1] - timed.times_s[0], 2),
        "cpu_ms_per_parsed_frame": round(timed.cpu_ms_per_frame, 1),
        "seconds_from_playing": round(run.span_s, 2),
        "latency_p50_ms": round(p50, 1),
        "latency_p99_ms": round(p99, 1),
        "people_per_frame_mean": round(float(people.mean()), 2),
        "people_per_frame_max": int(people.max()),
        "stage_ms_per_frame": {
            stage: round(MS_PER_S * spent / run.total_frames, 1)
            for stage, spent in run.stage_s.items()
            if spent
        },
        "peak_rss_mib": round(run.peak_rss / 2**20),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every variant on the clip and emit the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camera", type=Path, default=CAMERA_CONFIG, help="the real set")
    parser.add_argument("--demo", type=Path, default=DEMO_CONFIG, help="the synthetic set")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="real footage (looped)")
    parser.add_argument(
        "--four-people", action="store_true", help="instead: four_people_clip (made in a temp dir)"
    )
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="time per variant")
    parser.add_argument(
        "--long-sides", type=int, nargs="*", default=[], help="also MultiPose at these long sides"
    )
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument(
        "--max-in-flight", type=int, default=1, help="live gate: frames parsed at once"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parser key of every variant, e.g. parser.person.threads=2",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    chosen = {
        name: settings
        for name, settings in variants(args.camera, args.demo, args.long_sides, args.set).items()
        if not args.only or name in args.only
    }
    report: dict[str, Any] = {
        "video": VIDEO,
        "mode": f"live (max_in_flight {args.max_in_flight})",
        "overrides": args.set,
        "seconds_per_variant": args.seconds,
        "environment": environment(),
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="real-live-") as workdir:
        clip = four_people_clip(Path(workdir)) if args.four_people else args.clip
        report["clip"] = clip.name
        for name, settings in chosen.items():
            report["variants"][name] = measure(settings, clip, args.seconds, args.max_in_flight)
            log.warning("%s: %s", name, report["variants"][name])
    emit(report, args.out, indent=1)


if __name__ == "__main__":
    main()
