"""One shared CSN with 7 heads against 7 one-head CSNs (the report's way): parameters and clips/s.

    python -m bench.csn_modes --shared out/ablations/csn_shared/csn.safetensors \\
        --separate out/ablations/csn_separate --out csn_modes.json

Both sides run the same random clips of the networks' input shape through torch, batch by batch,
repeats interleaved so that the machine's load hits both alike; the medians and their ratio are
reported as JSON. The accuracy side of the comparison is the networks' validation metadata and a
``run.py predict`` run (docs/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import TORCH_THREADS, emit, environment, median
from models.checkpoint import build_from_checkpoint, read_metadata

BATCH = 8
BATCHES = 4
REPEATS = 5


def load(paths: list[Path]) -> list[torch.nn.Module]:
    """The networks of `paths`, in eval mode."""
    return [build_from_checkpoint(path)[0].eval() for path in paths]


def clips_per_s(networks: list[torch.nn.Module], clips: torch.Tensor) -> float:
    """Clips per second through every network of a side (a clip needs all of them)."""
    started = time.perf_counter()
    with torch.inference_mode():
        for _ in range(BATCHES):
            for network in networks:
                network(clips)
    return BATCHES * len(clips) / (time.perf_counter() - started)


def parameters(networks: list[torch.nn.Module]) -> int:
    return sum(p.numel() for network in networks for p in network.parameters())


def compare(shared: Path, separate: list[Path]) -> dict[str, Any]:
    """Parameters, clips/s (median of interleaved repeats) and validation metrics of both sides."""
    torch.set_num_threads(TORCH_THREADS)
    sides = {"shared": load([shared]), "separate": load(separate)}
    shape = json.loads(read_metadata(shared)["input_shape"])
    clips = torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(0))
    for networks in sides.values():
        clips_per_s(networks, clips[:1])  # warm-up
    rates: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(REPEATS):
        for side, networks in sides.items():
            rates[side].append(clips_per_s(networks, clips))
    files = {"shared": [shared], "separate": separate}
    report = {
        side: {
            "networks": len(networks),
            "parameters": parameters(networks),
            "clips_per_s": median(rates[side]),
            "validation": [
                json.loads(read_metadata(path).get("metrics", "{}")) for path in files[side]
            ],
        }
        for side, networks in sides.items()
    }
    return {
        "input_shape": shape,
        "batch": BATCH,
        "repeats": REPEATS,
        "torch_threads": TORCH_THREADS,
        **report,
        "separate_over_shared_parameters": report["separate"]["parameters"]
        / report["shared"]["parameters"],
        "shared_over_separate_clips_per_s": report["shared"]["clips_per_s"]
        / report["separate"]["clips_per_s"],
        "environment": environment(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, required=True, help="the 7-head checkpoint")
    parser.add_argument("--separate", type=Path, required=True, help="folder of csn_<head> files")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    separate = sorted(args.separate.glob("csn_*.safetensors"))
    if not separate:
        parser.error(f"--separate {args.separate}: no csn_<head>.safetensors there")
    emit(compare(args.shared, separate), args.out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
