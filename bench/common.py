"""What every section of the benchmark suite shares: the machine, the weights, the videos, medians.

The suite measures the parser with the shipped weights when `weights/` has them all, and otherwise
with randomly initialised tiny networks saved in our checkpoint format (the same shapes of work,
none of the accuracy). Either way the person detector keeps every candidate (score threshold 0)
up to a fixed `MAX_PERSONS`, so every frame does the same work whatever the weights have learnt.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import models
from parsing.settings import ParserSettings
from pipeline.config import validate
from tps.synth.dataset import VIDEO_DIR, write_split
from tps.vocabulary import PART_TYPES, PARTS

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"
SHIPPED_WEIGHTS = REPO / "weights"
SHIPPED_FILES = {
    "person": "person.safetensors",
    "pose": "pose.safetensors",
    "parts": "parts.safetensors",
    "csn_ip": "csn_ip.safetensors",
    "csn_ir": "csn_ir.safetensors",
}
"""The demo config's checkpoints (configs/demo.yaml), by role."""

MAX_PERSONS = 2
"""Persons parsed per frame: fixed, with a score threshold of 0, so every frame does equal work."""
PERSON_SCORE_THRESHOLD = 0.0
CLIP_HOP = 8
AVERAGE_CLIPS = 7
TORCH_THREADS = 1
"""torch intra-op threads for every section (bench/models_bench.py explains why 1 on 2 cores)."""

RANDOM_ACTIONS = ("push_up", "lunge", "pull_ups")
RANDOM_STATES = ("none", "bend")
RANDOM_SPECS: dict[str, tuple[str, tuple[int, ...]]] = {
    "person": ("yolof_tiny", (3, 128, 160)),
    "pose": ("hrnet_tiny", (3, 128, 96)),
    "parts": ("yolof_tiny", (3, 96, 96)),
    "csn_ir": ("ir_csn_tiny", (3, 8, 56, 56)),
}
"""Random tiny networks by role: (architecture, input shape C,[T,]H,W saved as metadata)."""
SEED = 0

SYNTH_SPLIT = "bench"
SYNTH_PEOPLE = 2
KIB = 1024


@dataclass(frozen=True)
class Weights:
    """The checkpoints the suite runs, and where they came from ("shipped" or "random")."""

    source: str
    person: Path
    pose: Path
    parts: Path
    clip: tuple[Path, ...]


def environment() -> dict[str, Any]:
    """The machine as the figures need it: cores, load, versions, threads."""
    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1m_5m_15m": list(os.getloadavg()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def median(values: Iterable[float]) -> float:
    """The median of a non-empty collection, as a float."""
    return float(statistics.median(list(values)))


def process_status(field: str = "VmRSS") -> int:
    """One number of /proc/self/status: VmRSS (resident bytes), VmHWM (peak), Threads (count)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            value = int(line.split()[1])
            return value * KIB if field.startswith("Vm") else value
    raise RuntimeError(f"/proc/self/status has no {field} line")


class PeakMemory:
    """The highest resident memory of this process while the ``with`` block runs, sampled.

    VmHWM would include everything before the block (e.g. an earlier, bigger run), so a thread
    samples VmRSS every `every_s` seconds instead.
    """

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, process_status("VmRSS"))
            if self._stop.wait(self.every_s):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, process_status("VmRSS"))


def emit(report: dict[str, Any], out: Path | None, indent: int | None = None) -> None:
    """Print a benchmark's JSON report, and write it to `out` too when given."""
    text = json.dumps(report, indent=indent)
    print(text)
    if out is not None:
        out.write_text(text + "\n")


def timed(function: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _random_classes(role: str) -> list[str] | dict[str, list[str]]:
    if role == "person":
        return ["person"]
    if role == "pose":
        return [f"keypoint_{index}" for index in range(17)]
    if role == "parts":
        return list(PARTS)
    heads = {"video": list(RANDOM_ACTIONS)}
    for type_name in PART_TYPES:
        heads[type_name] = [
            f"{action}_{type_name.capitalize()}_{state}"
            for action in RANDOM_ACTIONS
            for state in RANDOM_STATES
        ]
    return heads


def random_weights(
    folder: Path, specs: dict[str, tuple[str, tuple[int, ...]]] = RANDOM_SPECS
) -> Weights:
    """Randomly initialised tiny networks of every stage (seeded), written to `folder` once.

    `specs` may shrink the inputs (the tests use smaller clips than the benchmarks).
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for role, (arch, input_shape) in specs.items():
        path = folder / f"{role}.safetensors"
        if not path.is_file():
            classes = _random_classes(role)
            counts = (
                {head: len(names) for head, names in classes.items()}
                if isinstance(classes, dict)
                else len(classes)
            )
            torch.manual_seed(SEED)
            model = models.build(arch, num_classes=counts)
            models.save_checkpoint(
                model, path, arch, classes, extra={"input_shape": list(input_shape)}
            )
        paths[role] = path
    return Weights("random", paths["person"], paths["pose"], paths["parts"], (paths["csn_ir"],))


def resolve_weights(workdir: Path, shipped: Path = SHIPPED_WEIGHTS) -> Weights:
    """The shipped checkpoints when `shipped` holds all of them, else random tiny ones."""
    files = {role: shipped / name for role, name in SHIPPED_FILES.items()}
    if all(path.is_file() for path in files.values()):
        return Weights(
            "shipped",
            files["person"],
            files["pose"],
            files["parts"],
            (files["csn_ip"], files["csn_ir"]),
        )
    return random_weights(workdir / "random_weights")


def parser_data(weights: Weights) -> dict[str, Any]:
    """The parser section (plain data) every section runs: fixed work per frame, torch engine."""
    return {
        "person": {
            "weights": weights.person,
            "score_threshold": PERSON_SCORE_THRESHOLD,
            "max_persons": MAX_PERSONS,
        },
        "pose": {"weights": weights.pose},
        "parts": {"weights": weights.parts},
        "clip": {
            "networks": [{"weights": path} for path in weights.clip],
            "hop": CLIP_HOP,
            "average_clips": AVERAGE_CLIPS,
        },
    }


def parser_settings(weights: Weights) -> ParserSettings:
    """`parser_data` validated."""
    return validate(ParserSettings, parser_data(weights), "bench parser")


def synthetic_videos(folder: Path, videos: int, frames: int, size: tuple[int, int]) -> list[Path]:
    """A synthetic split of `videos` H.264 videos (SYNTH_PEOPLE people each), rendered once."""
    out = folder / f"synth_{videos}x{frames}_{size[0]}x{size[1]}"
    found = sorted((out / VIDEO_DIR).glob("*.mp4"))
    if len(found) < videos:
        write_split(
            out, videos, SEED, split=SYNTH_SPLIT, frames=frames, size=size, people=SYNTH_PEOPLE
        )
        found = sorted((out / VIDEO_DIR).glob("*.mp4"))
    return found[:videos]


def shared_clips(names: Sequence[str] | None = None) -> list[Path]:
    """The real clips of ../shared/media (all, or those named); empty when the folder is absent."""
    if not SHARED_MEDIA.is_dir():
        return []
    clips = sorted(SHARED_MEDIA.glob("*.mp4"))
    return [clip for clip in clips if names is None or clip.name in names]
