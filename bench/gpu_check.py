"""GPU check: CUDA parity per model and paper-size timings (torch fp32/fp16, TensorRT fp16).

On a machine with an NVIDIA GPU, in one run bounded by `--budget-s` (default 7 minutes):

1. parity: for every `*_tiny` model and every paper-size model, `TorchEngine` on CUDA in fp32 and
   fp16 against CPU fp32 (same weights, batch 1, relative error ||gpu - cpu|| / ||cpu|| per output;
   fp32 convolutions use TF32 on Ampere and newer, as torch does by default);
2. timing: the paper-size models (yolof_r101 at 800x1216, hrnet_w48 at 256x192, ir_csn_152 and
   ip_csn_152 at 32x224x224) at batch 1 and 8: the forward pass timed with CUDA events (fp32,
   fp16, fp16 channels-last), and end to end through `TorchEngine.run` (numpy in and out) in fp16;
3. TensorRT fp16 through `TensorRTEngine` where `tensorrt` imports and time remains: parity and
   end-to-end timing at batch 1 and 8 (plans are built in a temporary cache).

Writes `gpu_check.json` and `gpu_check.md` under `--out`. Without CUDA it prints one line and
exits 0. Weights are random (seeded); the figures are about speed and numerical agreement.

    python bench/gpu_check.py --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/gpu_check.py`: import from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch import nn

import models
from engines import Engine, EngineError, TensorRTEngine, TorchEngine, export_onnx
from engines.torch_engine import module_to_channels_last, to_channels_last

PAPER_MODELS = ("yolof_r101", "hrnet_w48", "ir_csn_152", "ip_csn_152")
TINY_SUFFIX = "_tiny"
TIMING_BATCHES = (1, 8)
WARMUP_ITERATIONS = 3
TIMED_ITERATIONS = 10
DEFAULT_BUDGET_S = 420.0
# Rough worst-case seconds for one TensorRT fp16 build and its timing; no build starts later.
TENSORRT_RESERVE_S = 90.0
TENSORRT_PROFILE = (1, 8, 8)
FP32_TOLERANCE = 1e-3  # TF32 convolutions
FP16_TOLERANCE = 2e-2
SEED = 0


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected|| / max(||expected||, tiny) in float64; inf when not finite."""
    if not np.isfinite(actual).all():
        return float("inf")
    expected64 = expected.astype(np.float64)
    scale = max(float(np.linalg.norm(expected64)), np.finfo(np.float32).tiny)
    return float(np.linalg.norm(actual.astype(np.float64) - expected64)) / scale


def worst_error(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """The largest per-output relative error."""
    return max(relative_error(outputs[name], value) for name, value in reference.items())


def event_ms(forward: Callable[[], object]) -> float:
    """Mean milliseconds of `forward()` on the GPU, timed with CUDA events after a warm-up."""
    for _ in range(WARMUP_ITERATIONS):
        forward()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(TIMED_ITERATIONS):
        forward()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / TIMED_ITERATIONS


def wall_ms(engine: Engine, batch: np.ndarray) -> float:
    """Mean milliseconds of `engine.run(batch)` (numpy in and out, transfers included)."""
    for _ in range(WARMUP_ITERATIONS):
        engine.run(batch)
    started = time.perf_counter()
    for _ in range(TIMED_ITERATIONS):
        engine.run(batch)
    return (time.perf_counter() - started) * 1000.0 / TIMED_ITERATIONS


def forward_ms(model: nn.Module, batch: np.ndarray, half: bool, channels_last: bool) -> float:
    """CUDA-event milliseconds of one forward pass of `model` (already on the GPU)."""
    inputs = torch.from_numpy(batch).cuda()
    if half:
        inputs = inputs.half()
    if channels_last:
        inputs = to_channels_last(inputs)
    with torch.inference_mode():
        return event_ms(lambda: model(inputs))


def check_model(
    name: str, timed: bool, use_tensorrt: bool, workdir: Path, deadline: float
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Parity (and, for `timed` models, timing rows) for one registered model."""
    torch.manual_seed(SEED)
    model = models.build(name).eval()
    sample_shape = tuple(model.input_shape)
    rng = np.random.default_rng(SEED)
    single = rng.standard_normal((1, *sample_shape)).astype(np.float32)
    reference = TorchEngine(copy.deepcopy(model)).run(single)
    fp32 = TorchEngine(copy.deepcopy(model), device="cuda")
    fp16 = TorchEngine(copy.deepcopy(model), device="cuda", precision="fp16", channels_last=True)
    parity: dict[str, object] = {
        "model": name,
        "input_shape": list(sample_shape),
        "cuda_fp32": worst_error(fp32.run(single), reference),
        "cuda_fp16": worst_error(fp16.run(single), reference),
    }
    tensorrt: TensorRTEngine | None = None
    if use_tensorrt and time.monotonic() + TENSORRT_RESERVE_S < deadline:
        onnx_path = workdir / f"{name}.onnx"
        try:
            export_onnx(copy.deepcopy(model), torch.zeros(1, *sample_shape), onnx_path, name=name)
            started = time.perf_counter()
            tensorrt = TensorRTEngine(
                onnx_path, "fp16", cache_dir=workdir / "plans", shape_profile=TENSORRT_PROFILE
            )
            parity["tensorrt_build_s"] = time.perf_counter() - started
            parity["tensorrt_fp16"] = worst_error(tensorrt.run(single), reference)
        except EngineError as error:
            parity["tensorrt_error"] = str(error)
    parity["ok"] = (
        parity["cuda_fp32"] < FP32_TOLERANCE
        and parity["cuda_fp16"] < FP16_TOLERANCE
        and parity.get("tensorrt_fp16", 0.0) < FP16_TOLERANCE
    )
    rows = []
    if timed:
        gpu_model = copy.deepcopy(model).cuda()
        half_model = copy.deepcopy(model).cuda().half()
        half_channels_last = module_to_channels_last(copy.deepcopy(half_model))
        for batch_size in TIMING_BATCHES:
            batch = rng.standard_normal((batch_size, *sample_shape)).astype(np.float32)
            row: dict[str, object] = {
                "model": name,
                "batch": batch_size,
                "torch_fp32_ms": forward_ms(gpu_model, batch, half=False, channels_last=False),
                "torch_fp16_ms": forward_ms(half_model, batch, half=True, channels_last=False),
                "torch_fp16_channels_last_ms": forward_ms(
                    half_channels_last, batch, half=True, channels_last=True
                ),
                "torch_fp16_engine_ms": wall_ms(fp16, batch),
            }
            if tensorrt is not None:
                row["tensorrt_fp16_engine_ms"] = wall_ms(tensorrt, batch)
            row["torch_fp16_per_s"] = batch_size * 1000.0 / float(row["torch_fp16_ms"])
            rows.append(row)
        del gpu_model, half_model, half_channels_last
    for engine in (fp32, fp16, tensorrt):
        if engine is not None:
            engine.close()
    torch.cuda.empty_cache()
    return parity, rows


def markdown(report: dict[str, object]) -> str:
    """The report as two Markdown tables (parity, timing)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return "" if value is None else str(value)

    lines = [f"# GPU check on {report['environment']['gpu']}", "", "## Parity vs CPU fp32", ""]
    parity_columns = ["model", "cuda_fp32", "cuda_fp16", "tensorrt_fp16", "ok"]
    lines += ["| " + " | ".join(parity_columns) + " |", "|" + " --- |" * len(parity_columns)]
    for row in report["parity"]:
        lines.append("| " + " | ".join(cell(row.get(key)) for key in parity_columns) + " |")
    timing_columns = [
        "model",
        "batch",
        "torch_fp32_ms",
        "torch_fp16_ms",
        "torch_fp16_channels_last_ms",
        "torch_fp16_engine_ms",
        "tensorrt_fp16_engine_ms",
        "torch_fp16_per_s",
    ]
    lines += ["", "## Timing (ms per batch)", ""]
    lines += ["| " + " | ".join(timing_columns) + " |", "|" + " --- |" * len(timing_columns)]
    for row in report["timing"]:
        lines.append("| " + " | ".join(cell(row.get(key)) for key in timing_columns) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON and Markdown")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="time budget")
    parser.add_argument("--paper-models", nargs="*", default=list(PAPER_MODELS))
    parser.add_argument("--no-tensorrt", action="store_true", help="skip TensorRT")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing to check")
        return 0
    started = time.monotonic()
    deadline = started + args.budget_s
    use_tensorrt = not args.no_tensorrt and importlib.util.find_spec("tensorrt") is not None
    torch.set_num_threads(os.cpu_count() or 1)
    tiny = [name for name in models.names() if name.endswith(TINY_SUFFIX)]
    parity: list[dict[str, object]] = []
    timing: list[dict[str, object]] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as workdir:
        for name in [*tiny, *args.paper_models]:
            if time.monotonic() > deadline:
                skipped.append(name)
                continue
            timed = name in args.paper_models
            model_parity, rows = check_model(name, timed, use_tensorrt, Path(workdir), deadline)
            parity.append(model_parity)
            timing.extend(rows)
            print(f"gpu_check: {name} done at {time.monotonic() - started:.0f} s", flush=True)
    report = {
        "benchmark": "gpu_check",
        "environment": {
            "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "tensorrt": use_tensorrt,
            "python": platform.python_version(),
        },
        "settings": {
            "timing_batches": list(TIMING_BATCHES),
            "warmup_iterations": WARMUP_ITERATIONS,
            "timed_iterations": TIMED_ITERATIONS,
            "fp32_tolerance": FP32_TOLERANCE,
            "fp16_tolerance": FP16_TOLERANCE,
            "budget_s": args.budget_s,
        },
        "parity": parity,
        "timing": timing,
        "skipped_for_time": skipped,
        "wall_s": time.monotonic() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(row["ok"] for row in parity) and not skipped else 1


if __name__ == "__main__":
    sys.exit(main())
