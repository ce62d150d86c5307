"""Loading a network from its settings: checkpoint -> model -> engine, with the facts callers need.

A `Network` carries a `run` callable (numpy batch in, named outputs out) rather than an engine, so
the streaming pipeline can swap in a micro-batcher that serves several streams with one call.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines import Engine, create_engine, export_onnx
from models import build_from_checkpoint, read_metadata
from parsing.settings import NetworkSettings

log = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Runs a network on a batch (N, ...) and returns float32 outputs by name."""

DEFAULT_CACHE_DIR = Path(".cache/engines")
"""Where exported ONNX files (for ONNX Runtime and TensorRT) are kept between runs."""


@dataclass(frozen=True)
class Network:
    """A network ready to run.

    Attributes:
        arch: registry name of the architecture.
        run: batch (N, ...) float32 -> outputs by name.
        model: the torch module (its attributes, e.g. anchor sizes, describe the outputs).
        input_shape: per-sample input shape the weights were trained at, e.g. (3, 256, 320).
        classes: class names, or {head: names} for a multi-head network.
        engine: the engine behind `run`; closing it ends the network.
        metadata: the checkpoint's metadata (strings; JSON where structured), e.g. how the
            training cut its inputs.
    """

    arch: str
    run: Runner
    model: nn.Module
    input_shape: tuple[int, ...]
    classes: list[str] | dict[str, list[str]]
    engine: Engine
    metadata: dict[str, str]

    @property
    def input_hw(self) -> tuple[int, int]:
        """Spatial input size (height, width)."""
        return int(self.input_shape[-2]), int(self.input_shape[-1])


def _onnx_file(model: nn.Module, weights: Path, input_shape: tuple[int, ...], cache: Path) -> Path:
    """Export `model` once per weights file content and input shape; reuse the file afterwards."""
    digest = hashlib.sha256(weights.read_bytes())
    digest.update(repr(input_shape).encode())
    path = cache / f"{weights.stem}-{digest.hexdigest()[:16]}.onnx"
    if not path.is_file():
        example = torch.zeros((1, *input_shape))
        export_onnx(model, example, path, name=weights.stem)
    return path


def load_network(settings: NetworkSettings, cache_dir: Path = DEFAULT_CACHE_DIR) -> Network:
    """Build the network a checkpoint describes and the engine that runs it.

    Raises:
        ModelError: the checkpoint is missing, not ours, or does not fit its architecture.
        EngineError: the engine cannot be created on this machine.
    """
    model, _ = build_from_checkpoint(settings.weights)
    metadata = read_metadata(settings.weights)
    input_shape = tuple(json.loads(metadata.get("input_shape", "null")) or model.input_shape)
    model.eval()
    if settings.engine == "torch":
        engine = create_engine("torch", model, device=settings.device, precision=settings.precision)
    else:
        onnx_path = _onnx_file(model, settings.weights, input_shape, cache_dir)
        options = (
            {"precision": settings.precision}
            if settings.engine == "tensorrt"
            else {"intra_op_threads": settings.threads}
        )
        engine = create_engine(settings.engine, onnx_path, **options)
    log.debug("loaded %s from %s on %s", metadata["arch"], settings.weights, settings.engine)
    return Network(
        arch=metadata["arch"],
        run=engine.run,
        model=model,
        input_shape=input_shape,
        classes=json.loads(metadata["classes"]),
        engine=engine,
        metadata=metadata,
    )
