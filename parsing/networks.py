"""Loading a network from its settings: checkpoint -> model -> engine, with the facts callers need.

A `Network` carries a `run` callable (numpy batch in, named outputs out) rather than an engine, so
the streaming pipeline can swap in a micro-batcher that serves several streams with one call.

Two kinds of weights load here. A safetensors checkpoint in our format builds its torch model,
which runs on torch or is exported to ONNX for ONNX Runtime / TensorRT. A ``.onnx`` file is one of
the pretrained real networks (``make real-weights``): it must match, by sha256, an entry of the
``real`` section of the weights manifest, and runs as it is on ONNX Runtime or TensorRT (the
shipped files fix the batch axis at 1, so a batch of N runs as N runs inside the engine call).

Each network knows its origin, so events can name the model set that produced them:
``synthetic`` (trained here), ``user`` (converted from a user's checkpoint: ``models convert``)
or ``real`` (the pretrained real networks).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from engines import Engine, create_engine, export_onnx
from models import ModelError, build_from_checkpoint, read_metadata
from parsing.real_models import COCO17, RealModelError, find_real
from parsing.settings import NetworkSettings

log = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Runs a network on a batch (N, ...) and returns float32 outputs by name."""

DEFAULT_CACHE_DIR = Path(".cache/engines")
"""Where exported ONNX files (for ONNX Runtime and TensorRT) are kept between runs."""

ONNX_SUFFIX = ".onnx"
SINGLE_SAMPLE_PROFILE = (1, 1, 1)
"""TensorRT batch profile of a graph that fixes the batch axis at 1 (the real networks)."""

Origin = Literal["synthetic", "user", "real"]
MIXED = "mixed"
"""The model set of a parser whose networks have different origins."""


def model_set(origins: Iterable[Origin]) -> str:
    """The model set a group of networks forms: their common origin, else ``mixed``."""
    found = set(origins)
    return found.pop() if len(found) == 1 else MIXED


@dataclass(frozen=True)
class Network:
    """A network ready to run.

    Attributes:
        arch: registry name of the architecture, or the real network's manifest name.
        run: batch (N, ...) -> float32 outputs by name.
        model: the torch module (its attributes, e.g. anchor sizes, describe the outputs); None
            for a real network (an ONNX file without a torch twin).
        input_shape: per-sample input shape the weights were trained at, e.g. (3, 256, 320);
            (H, W, 3) for a real network, 0 where it takes any size.
        classes: class names, or {head: names} for a multi-head network.
        engine: the engine behind `run`; closing it ends the network.
        metadata: the checkpoint's metadata (strings; JSON where structured), e.g. how the
            training cut its inputs; a real network's manifest entry (JSON values).
        origin: ``synthetic``, ``user`` or ``real`` (see the module docstring).
    """

    arch: str
    run: Runner
    model: nn.Module | None
    input_shape: tuple[int, ...]
    classes: list[str] | dict[str, list[str]]
    engine: Engine
    metadata: dict[str, str]
    origin: Origin = "synthetic"

    @property
    def input_hw(self) -> tuple[int, int]:
        """Spatial input size (height, width)."""
        if self.origin == "real":  # channels last: H, W, C
            return int(self.input_shape[0]), int(self.input_shape[1])
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
        ModelError: the checkpoint is missing, not ours, or does not fit its architecture; an
            ONNX file that no manifest's real section describes.
        EngineError: the engine cannot be created on this machine.
    """
    if settings.weights.suffix.lower() == ONNX_SUFFIX:
        return _load_real(settings)
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
        origin="user" if "source" in metadata else "synthetic",
    )


def _load_real(settings: NetworkSettings) -> Network:
    """A real network: its ONNX file as it is, on ONNX Runtime or TensorRT."""
    try:
        real = find_real(settings.weights)
    except RealModelError as error:
        raise ModelError(str(error)) from error
    if settings.engine == "torch":
        raise ModelError(
            f"{settings.weights}: a real network is an ONNX file; engine must be onnxruntime or"
            " tensorrt, got torch"
        )
    options = (
        {"precision": settings.precision, "shape_profile": SINGLE_SAMPLE_PROFILE}
        if settings.engine == "tensorrt"
        else {"intra_op_threads": settings.threads}
    )
    engine = create_engine(settings.engine, real.path, **options)
    log.debug("loaded real network %s from %s on %s", real.name, real.path, settings.engine)
    return Network(
        arch=real.name,
        run=engine.run,
        model=None,
        input_shape=(*real.input_hw, 3),
        classes=list(COCO17),
        engine=engine,
        metadata={key: json.dumps(value) for key, value in real.entry.items()},
        origin="real",
    )
