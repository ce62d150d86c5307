"""Throughput of the small model variants: torch vs ONNX Runtime, and the micro-batcher's gain.

For every registered `*_tiny` model (or those named with `--models`) it exports the model to ONNX,
then measures, side by side in one run:

- images (or clips, for 4-D per-sample inputs) per second at batch 1, 4 and 8 through
  `TorchEngine` and `OnnxRuntimeEngine`;
- the batching gain: the same requests as sequential batch-1 `run` calls vs 8 threads submitting
  single samples through a `MicroBatcher` (max batch 8).

Prints JSON (or writes it with `--out`). `--quick` does one timed run per point and fewer
batching requests, for a smoke check on a busy 2-core machine:

    .venv/bin/python bench/models_bench.py --quick --out /tmp/models_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/models_bench.py`: import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnxruntime as ort
import torch

import models
from engines import Engine, MicroBatcher, OnnxRuntimeEngine, TorchEngine, export_onnx

TINY_SUFFIX = "_tiny"
DEFAULT_BATCHES = (1, 4, 8)
DEFAULT_REPEATS = 5
QUICK_REPEATS = 1
# torch and ONNX Runtime intra-op threads. 1 because the 2-core development machines are shared:
# there, torch with 2 threads ran yolof_tiny ~10x slower than with 1 (its OpenMP workers wait on
# each other when the cores are busy).
DEFAULT_THREADS = 1
BATCHING_THREADS = 8
BATCHING_MAX_BATCH = 8
BATCHING_MAX_WAIT_MS = 5.0
BATCHING_REQUESTS = 64
QUICK_BATCHING_REQUESTS = 16
RESULT_TIMEOUT_S = 600.0
SEED = 0
# Per-sample rank -> what one sample is: (C, H, W) images, (C, T, H, W) clips.
SAMPLE_UNITS = {3: "images", 4: "clips"}


def samples_per_second(
    run: Callable[[np.ndarray], object], batch: np.ndarray, repeats: int
) -> float:
    """Samples per second of `run(batch)` over `repeats` timed calls after one warm-up call."""
    run(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        run(batch)
    return len(batch) * repeats / (time.perf_counter() - started)


def batching_gain(engine: Engine, samples: np.ndarray) -> dict[str, object]:
    """Sequential batch-1 calls vs `BATCHING_THREADS` threads submitting through a MicroBatcher.

    Args:
        engine: the engine both ways use.
        samples: (R, ...) requests; each thread submits its share and waits for its results.
    """
    engine.run(samples[:1])  # warm-up
    started = time.perf_counter()
    for sample in samples:
        engine.run(sample[None])
    sequential_s = time.perf_counter() - started

    shares = np.array_split(np.arange(len(samples)), BATCHING_THREADS)
    with MicroBatcher(
        engine.run,
        max_batch=BATCHING_MAX_BATCH,
        max_wait_ms=BATCHING_MAX_WAIT_MS,
        name=f"bench-{type(engine).__name__}",
    ) as batcher:

        def submit_share(indices: np.ndarray) -> None:
            for index in indices:  # one request at a time, as a stream element does
                batcher.submit(samples[index]).result(RESULT_TIMEOUT_S)

        threads = [threading.Thread(target=submit_share, args=(share,)) for share in shares]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        batched_s = time.perf_counter() - started
        stats = batcher.stats()
    return {
        "requests": len(samples),
        "threads": BATCHING_THREADS,
        "sequential_per_s": len(samples) / sequential_s,
        "batched_per_s": len(samples) / batched_s,
        "gain": sequential_s / batched_s,
        "mean_batch_size": stats.mean_batch_size,
        "batch_sizes": {str(size): count for size, count in sorted(stats.batch_sizes.items())},
    }


def bench_model(
    name: str, batches: Sequence[int], repeats: int, requests: int, threads: int, workdir: Path
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Throughput rows (one per batch size) and batching rows (one per engine) for one model."""
    torch.manual_seed(SEED)
    model = models.build(name).eval()
    sample_shape = tuple(model.input_shape)
    unit = SAMPLE_UNITS.get(len(sample_shape), "samples")
    path = export_onnx(model, torch.zeros(1, *sample_shape), workdir / f"{name}.onnx", name=name)
    engines: dict[str, Engine] = {
        "torch": TorchEngine(model),
        "onnxruntime": OnnxRuntimeEngine(path, intra_op_threads=threads),
    }
    rng = np.random.default_rng(SEED)
    throughput = []
    for batch_size in batches:
        batch = rng.standard_normal((batch_size, *sample_shape)).astype(np.float32)
        rates = {kind: samples_per_second(e.run, batch, repeats) for kind, e in engines.items()}
        throughput.append(
            {
                "model": name,
                "input_shape": list(sample_shape),
                "unit": unit,
                "batch": batch_size,
                "torch_per_s": rates["torch"],
                "onnxruntime_per_s": rates["onnxruntime"],
                "onnxruntime_over_torch": rates["onnxruntime"] / rates["torch"],
            }
        )
    samples = rng.standard_normal((requests, *sample_shape)).astype(np.float32)
    batching = [
        {"model": name, "unit": unit, "engine": kind, **batching_gain(engine, samples)}
        for kind, engine in engines.items()
    ]
    for engine in engines.values():
        engine.close()
    return throughput, batching


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", help="registered model names (default: *_tiny)")
    parser.add_argument("--batches", nargs="+", type=int, default=list(DEFAULT_BATCHES))
    parser.add_argument("--repeats", type=int, help=f"timed runs per point ({DEFAULT_REPEATS})")
    parser.add_argument("--requests", type=int, help=f"batching requests ({BATCHING_REQUESTS})")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="intra-op threads")
    parser.add_argument("--quick", action="store_true", help="one timed run per point")
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.models or [name for name in models.names() if name.endswith(TINY_SUFFIX)]
    unknown = sorted(set(names) - set(models.names()))
    if unknown:
        print(f"error: unknown models {unknown}; known: {models.names()}", file=sys.stderr)
        return 2
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    requests = args.requests or (QUICK_BATCHING_REQUESTS if args.quick else BATCHING_REQUESTS)
    torch.set_num_threads(args.threads)
    load_average = os.getloadavg()[0]
    throughput: list[dict[str, object]] = []
    batching: list[dict[str, object]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="models_bench_") as workdir:
        for name in names:
            rows, gains = bench_model(
                name, args.batches, repeats, requests, args.threads, Path(workdir)
            )
            throughput.extend(rows)
            batching.extend(gains)
    report = {
        "benchmark": "models_bench",
        "environment": {
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "intra_op_threads": args.threads,
            "load_average_1m_at_start": load_average,
        },
        "settings": {
            "models": names,
            "batches": args.batches,
            "repeats": repeats,
            "batching_requests": requests,
            "batching_threads": BATCHING_THREADS,
            "batching_max_batch": BATCHING_MAX_BATCH,
            "batching_max_wait_ms": BATCHING_MAX_WAIT_MS,
            "quick": args.quick,
        },
        "throughput": throughput,
        "batching": batching,
        "median_batching_gain": statistics.median(row["gain"] for row in batching),
        "wall_s": time.perf_counter() - started,
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
