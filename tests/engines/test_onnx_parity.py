"""ONNX parity for every small registered model: torch vs ONNX Runtime, batch 2, fixed seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import models
from engines import OnnxRuntimeEngine, TorchEngine, export_onnx

RELATIVE_TOLERANCE = 1e-4
BATCH = 2
SEED = 0
TINY_SUFFIX = "_tiny"


TINY_MODELS = [name for name in models.names() if name.endswith(TINY_SUFFIX)]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected|| / max(||expected||, tiny), in float64 (Frobenius norms)."""
    expected64 = expected.astype(np.float64)
    scale = max(float(np.linalg.norm(expected64)), np.finfo(np.float32).tiny)
    return float(np.linalg.norm(actual.astype(np.float64) - expected64)) / scale


def test_registry_has_tiny_models() -> None:
    assert TINY_MODELS, f"no registered model ends with {TINY_SUFFIX!r}: {models.names()}"


@pytest.mark.parametrize("name", TINY_MODELS)
def test_torch_and_onnxruntime_agree(name: str, tmp_path: Path) -> None:
    torch.manual_seed(SEED)
    model = models.build(name).eval()
    sample_shape = tuple(model.input_shape)
    example = torch.zeros(1, *sample_shape)
    path = export_onnx(model, example, tmp_path / f"{name}.onnx", name=name)
    batch = np.random.default_rng(SEED).standard_normal((BATCH, *sample_shape)).astype(np.float32)
    expected = TorchEngine(model).run(batch)
    outputs = OnnxRuntimeEngine(path).run(batch)
    assert tuple(outputs) == tuple(expected)
    for output_name, value in expected.items():
        assert outputs[output_name].shape == value.shape
        assert value.shape[0] == BATCH
        assert np.isfinite(value).all()
        error = relative_error(outputs[output_name], value)
        assert error < RELATIVE_TOLERANCE, f"{name}/{output_name}: relative error {error:.2e}"
