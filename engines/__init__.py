"""Running a network on a batch: torch, ONNX Runtime and TensorRT engines, and a micro-batcher.

engine = create_engine("onnxruntime", "hrnet_tiny.onnx")
outputs = engine.run(batch)  # {name: float32 (N, ...)}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torch import nn

from engines.base import Engine, EngineError, named_outputs
from engines.batcher import BatcherClosed, BatcherFull, BatcherStats, MicroBatcher
from engines.onnx_export import export_onnx
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.tensorrt_engine import TensorRTEngine
from engines.torch_engine import TorchEngine

EngineKind = Literal["torch", "onnxruntime", "tensorrt"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("torch", "onnxruntime", "tensorrt")

__all__ = [
    "ENGINE_KINDS",
    "BatcherClosed",
    "BatcherFull",
    "BatcherStats",
    "Engine",
    "EngineError",
    "EngineKind",
    "MicroBatcher",
    "OnnxRuntimeEngine",
    "TensorRTEngine",
    "TorchEngine",
    "create_engine",
    "export_onnx",
    "named_outputs",
]


def create_engine(kind: EngineKind, source: nn.Module | str | Path, **options: Any) -> Engine:
    """Build an engine of `kind` from `source`.

    Args:
        kind: `torch` (source: an `nn.Module`), `onnxruntime` or `tensorrt` (source: an ONNX
            file path).
        source: the model or the ONNX file.
        **options: passed to the engine's constructor (e.g. `device`, `precision`, `providers`,
            `shape_profile`).

    Raises:
        EngineError: an unknown kind, or a source of the wrong type for it.
    """
    if kind not in ENGINE_KINDS:
        raise EngineError(f"engine kind must be one of {ENGINE_KINDS}, got {kind!r}")
    if kind == "torch":
        if not isinstance(source, nn.Module):
            raise EngineError(f"torch engine needs an nn.Module, got {type(source).__name__}")
        return TorchEngine(source, **options)
    if not isinstance(source, str | Path):
        raise EngineError(f"{kind} engine needs an ONNX file path, got {type(source).__name__}")
    if kind == "onnxruntime":
        return OnnxRuntimeEngine(source, **options)
    return TensorRTEngine(source, **options)
