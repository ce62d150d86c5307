"""Engines: output naming, TorchEngine, ONNX export, OnnxRuntimeEngine, TensorRT (GPU only)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from engines import (
    EngineError,
    OnnxRuntimeEngine,
    TensorRTEngine,
    TorchEngine,
    create_engine,
    export_onnx,
    named_outputs,
)
from engines.tensorrt_engine import check_shape_profile, plan_cache_key

RELATIVE_TOLERANCE = 1e-4
FP16_RELATIVE_TOLERANCE = 1e-2
HAS_CUDA = torch.cuda.is_available()
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="CUDA not available")
needs_tensorrt = pytest.mark.skipif(not HAS_TENSORRT, reason="tensorrt not importable")


class DilatedNet(nn.Module):
    """2-D conv net with a dilated conv and BatchNorm; returns a tuple (maps, pooled)."""

    input_shape = (3, 32, 32)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=2, dilation=2)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.bn(self.conv(images)))  # N,8,H,W
        maps = self.head(features)  # N,4,H,W
        return maps, maps.flatten(2).amax(dim=2)  # N,4,H,W and N,4


class DepthwiseHeadsNet(nn.Module):
    """3-D net with a depthwise conv (CSN-style) and a ModuleDict of heads returning a dict."""

    input_shape = (3, 4, 16, 16)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(3, 8, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3))
        self.depthwise = nn.Conv3d(8, 8, 3, padding=1, groups=8)
        self.bn = nn.BatchNorm3d(8, eps=1e-3)
        self.heads = nn.ModuleDict({"video": nn.Linear(8, 5), "arm": nn.Linear(8, 3)})

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.bn(self.depthwise(self.stem(clips))))  # N,8,T,H/2,W/2
        pooled = features.mean(dim=(2, 3, 4))  # N,8
        return {name: head(pooled) for name, head in self.heads.items()}


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """||actual - expected|| / max(||expected||, tiny), in float64."""
    expected64 = expected.astype(np.float64)
    scale = max(float(np.linalg.norm(expected64)), np.finfo(np.float32).tiny)
    return float(np.linalg.norm(actual.astype(np.float64) - expected64)) / scale


def make_model(model_class: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    model = model_class().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval-mode BN is exercised
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def make_batch(shape: tuple[int, ...], batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


MODELS = [
    pytest.param(DilatedNet, ("output_0", "output_1"), id="dilated-tuple"),
    pytest.param(DepthwiseHeadsNet, ("video", "arm"), id="depthwise3d-dict"),
]


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        pytest.param("t", {"output": "t"}, id="single"),
        pytest.param(("a", "b"), {"output_0": "a", "output_1": "b"}, id="tuple"),
        pytest.param(["a"], {"output_0": "a"}, id="list"),
        pytest.param({"video": "v", "head": "h"}, {"video": "v", "head": "h"}, id="dict"),
    ],
)
def test_named_outputs(outputs: object, expected: dict[str, object]) -> None:
    named = named_outputs(outputs)
    assert named == expected
    assert list(named) == list(expected)


@pytest.mark.parametrize(
    "outputs",
    [pytest.param((), id="empty"), pytest.param(({"a": 1},), id="nested")],
)
def test_named_outputs_rejects(outputs: object) -> None:
    with pytest.raises(EngineError):
        named_outputs(outputs)


@pytest.mark.parametrize(("model_class", "names"), MODELS)
def test_torch_engine_matches_module(model_class: type[nn.Module], names: tuple[str, ...]) -> None:
    model = make_model(model_class)
    batch = make_batch(model_class.input_shape, 3)
    with torch.no_grad():
        expected = named_outputs(model(torch.from_numpy(batch)))
    with TorchEngine(model) as engine:
        assert engine.output_names == ()
        outputs = engine.run(batch)
        assert engine.output_names == names
    assert tuple(outputs) == names
    for name in names:
        assert outputs[name].dtype == np.float32
        np.testing.assert_allclose(outputs[name], expected[name].numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("model_class", "names"), MODELS)
def test_torch_engine_channels_last(model_class: type[nn.Module], names: tuple[str, ...]) -> None:
    batch = make_batch(model_class.input_shape, 2)
    plain = TorchEngine(make_model(model_class)).run(batch)
    channels_last = TorchEngine(make_model(model_class), channels_last=True).run(batch)
    for name in names:
        assert relative_error(channels_last[name], plain[name]) < RELATIVE_TOLERANCE


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"precision": "fp16"}, "fp16 needs a CUDA device", id="fp16-on-cpu"),
        pytest.param({"precision": "int8"}, "precision must be one of", id="int8"),
        pytest.param({"device": "tpu"}, "invalid device", id="unknown-device"),
        pytest.param({"device": "meta"}, "device type must be one of", id="meta-device"),
    ],
)
def test_torch_engine_rejects(options: dict[str, str], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        TorchEngine(DilatedNet(), **options)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised where CUDA is absent")
def test_torch_engine_cuda_absent() -> None:
    with pytest.raises(EngineError, match="CUDA is not available"):
        TorchEngine(DilatedNet(), device="cuda")


def test_torch_engine_rejects_bad_input_and_closed() -> None:
    engine = TorchEngine(make_model(DilatedNet))
    with pytest.raises(EngineError, match="expected a numpy array"):
        engine.run(torch.zeros(1, 3, 32, 32))  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(EngineError, match=r"shape \(N>=1"):
        engine.run(np.zeros((0, 3, 32, 32), np.float32))
    engine.close()
    with pytest.raises(EngineError, match="after close"):
        engine.run(make_batch(DilatedNet.input_shape, 1))


@pytest.mark.parametrize(("model_class", "names"), MODELS)
def test_export_runs_in_onnxruntime_batch_1_and_3(
    model_class: type[nn.Module], names: tuple[str, ...], tmp_path: Path
) -> None:
    model = make_model(model_class)
    example = torch.from_numpy(make_batch(model_class.input_shape, 1))
    path = export_onnx(model, example, tmp_path / "nested" / "model.onnx")
    graph = onnx.load(str(path)).graph
    assert [value.name for value in graph.input] == ["input"]
    assert [value.name for value in graph.output] == list(names)
    for value in (*graph.input, *graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    engine = OnnxRuntimeEngine(path)
    assert (engine.input_name, engine.output_names) == ("input", names)
    assert (engine.device, engine.precision) == ("cpu", "fp32")
    torch_engine = TorchEngine(model)
    for batch_size in (1, 3):
        batch = make_batch(model_class.input_shape, batch_size, seed=batch_size)
        expected = torch_engine.run(batch)
        outputs = engine.run(batch)
        assert tuple(outputs) == names
        for name in names:
            assert outputs[name].shape == expected[name].shape
            assert outputs[name].shape[0] == batch_size
            assert relative_error(outputs[name], expected[name]) < RELATIVE_TOLERANCE


def test_export_with_dynamo_exporter(tmp_path: Path) -> None:
    model = make_model(DepthwiseHeadsNet)
    example = torch.from_numpy(make_batch(DepthwiseHeadsNet.input_shape, 2))
    path = export_onnx(model, example, tmp_path / "dynamo.onnx", opset=18, dynamo=True)
    batch = make_batch(DepthwiseHeadsNet.input_shape, 3)
    outputs = OnnxRuntimeEngine(path).run(batch)
    expected = TorchEngine(model).run(batch)
    assert tuple(outputs) == ("video", "arm")
    for name, value in expected.items():
        assert relative_error(outputs[name], value) < RELATIVE_TOLERANCE


class BrokenNet(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images @ torch.ones(5, 5)  # (N,3,4,4) @ (5,5): mismatched on purpose


def test_export_errors_name_the_model(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="export of broken_net: forward pass"):
        export_onnx(BrokenNet(), torch.zeros(1, 3, 4, 4), tmp_path / "x.onnx", name="broken_net")
    with pytest.raises(EngineError, match="export of DilatedNet: the dynamo exporter needs opset"):
        export_onnx(DilatedNet(), torch.zeros(1, 3, 8, 8), tmp_path / "x.onnx", dynamo=True)


def test_onnxruntime_engine_rejects(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        OnnxRuntimeEngine(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(EngineError, match="cannot load"):
        OnnxRuntimeEngine(garbage)
    with pytest.raises(EngineError, match="none of the providers"):
        OnnxRuntimeEngine(garbage, providers=["NoSuchExecutionProvider"])
    two_inputs = tmp_path / "two_inputs.onnx"
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "add",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 2]) for name in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", 2])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), two_inputs)
    with pytest.raises(EngineError, match="exactly 1 input, got 2"):
        OnnxRuntimeEngine(two_inputs)


def test_onnxruntime_engine_run_errors(tmp_path: Path) -> None:
    model = make_model(DilatedNet)
    path = export_onnx(model, torch.zeros(1, *DilatedNet.input_shape), tmp_path / "m.onnx")
    engine = OnnxRuntimeEngine(path, intra_op_threads=1)
    with pytest.raises(EngineError, match=r"failed on input shape \(1, 3, 16\)"):
        engine.run(np.zeros((1, 3, 16), np.float32))
    engine.close()
    with pytest.raises(EngineError, match="after close"):
        engine.run(make_batch(DilatedNet.input_shape, 1))


def test_create_engine(tmp_path: Path) -> None:
    model = make_model(DilatedNet)
    path = export_onnx(model, torch.zeros(1, *DilatedNet.input_shape), tmp_path / "m.onnx")
    assert isinstance(create_engine("torch", model), TorchEngine)
    assert isinstance(create_engine("onnxruntime", path, intra_op_threads=1), OnnxRuntimeEngine)
    with pytest.raises(EngineError, match="engine kind must be one of"):
        create_engine("tvm", path)  # type: ignore[arg-type]  # an unknown kind on purpose
    with pytest.raises(EngineError, match="needs an nn.Module"):
        create_engine("torch", path)
    with pytest.raises(EngineError, match="needs an ONNX file path"):
        create_engine("onnxruntime", model)


def test_plan_cache_key_changes_with_every_part() -> None:
    base = (b"onnx", "10.16.1", "NVIDIA H200", (1, 4, 8), "fp16")
    variants = [
        (b"onnx2", *base[1:]),
        (base[0], "10.15.0", *base[2:]),
        (*base[:2], "NVIDIA A100", *base[3:]),
        (*base[:3], (1, 4, 16), base[4]),
        (*base[:4], "int8"),
    ]
    key = plan_cache_key(*base)
    assert key == plan_cache_key(*base)
    assert len(key) == 64
    assert len({key, *(plan_cache_key(*variant) for variant in variants)}) == 1 + len(variants)


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param((0, 1, 2), id="zero-min"),
        pytest.param((4, 2, 8), id="opt-below-min"),
        pytest.param((1, 4), id="two-values"),
        pytest.param((1.0, 4, 8), id="float"),
    ],
)
def test_shape_profile_rejected(profile: tuple[int, ...], tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="shape_profile"):
        check_shape_profile(profile)
    with pytest.raises(EngineError, match="shape_profile"):
        TensorRTEngine(tmp_path / "m.onnx", shape_profile=profile)  # type: ignore[arg-type]


@pytest.mark.skipif(HAS_TENSORRT and HAS_CUDA, reason="checks the error raised without TensorRT")
def test_tensorrt_engine_unavailable_says_why(tmp_path: Path) -> None:
    path = export_onnx(make_model(DilatedNet), torch.zeros(1, 3, 32, 32), tmp_path / "m.onnx")
    with pytest.raises(EngineError, match="tensorrt not importable|CUDA not available"):
        TensorRTEngine(path, cache_dir=tmp_path / "plans")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("model_class", "names"), MODELS)
def test_torch_engine_cuda_fp16_parity(
    model_class: type[nn.Module], names: tuple[str, ...]
) -> None:
    batch = make_batch(model_class.input_shape, 2)
    expected = TorchEngine(make_model(model_class)).run(batch)
    fp32 = TorchEngine(make_model(model_class), device="cuda").run(batch)
    fp16 = TorchEngine(make_model(model_class), device="cuda", precision="fp16").run(batch)
    for name in names:
        assert relative_error(fp32[name], expected[name]) < RELATIVE_TOLERANCE
        assert relative_error(fp16[name], expected[name]) < FP16_RELATIVE_TOLERANCE


@pytest.mark.gpu
@needs_cuda
@needs_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_parity_and_plan_cache(precision: str, tmp_path: Path) -> None:
    model = make_model(DepthwiseHeadsNet)
    path = export_onnx(model, torch.zeros(1, *DepthwiseHeadsNet.input_shape), tmp_path / "m.onnx")
    cache_dir = tmp_path / "plans"
    engine = TensorRTEngine(path, precision=precision, cache_dir=cache_dir, shape_profile=(1, 2, 4))
    assert (engine.input_name, engine.output_names) == ("input", ("video", "arm"))
    tolerance = RELATIVE_TOLERANCE * 10 if precision == "fp32" else FP16_RELATIVE_TOLERANCE
    for batch_size in (1, 3):
        batch = make_batch(DepthwiseHeadsNet.input_shape, batch_size, seed=batch_size)
        expected = TorchEngine(model).run(batch)
        outputs = engine.run(batch)
        for name, value in expected.items():
            assert relative_error(outputs[name], value) < tolerance
    with pytest.raises(EngineError, match=r"batch size must be in \[1, 4\]"):
        engine.run(make_batch(DepthwiseHeadsNet.input_shape, 5))
    plans = sorted(cache_dir.glob("*.plan"))
    assert len(plans) == 1
    built_at = plans[0].stat().st_mtime_ns
    engine.close()
    cached = TensorRTEngine(path, precision=precision, cache_dir=cache_dir, shape_profile=(1, 2, 4))
    assert sorted(cache_dir.glob("*.plan")) == plans
    assert plans[0].stat().st_mtime_ns == built_at
    batch = make_batch(DepthwiseHeadsNet.input_shape, 2)
    np.testing.assert_allclose(
        cached.run(batch)["video"], TorchEngine(model).run(batch)["video"], rtol=0.05, atol=0.05
    )


@pytest.mark.gpu
@needs_cuda
@needs_tensorrt
def test_tensorrt_engine_int8_calibration(tmp_path: Path) -> None:
    model = make_model(DilatedNet)
    path = export_onnx(model, torch.zeros(1, *DilatedNet.input_shape), tmp_path / "m.onnx")
    calls = []

    def batches() -> list[np.ndarray]:
        calls.append(1)
        return [make_batch(DilatedNet.input_shape, 4, seed=seed) for seed in range(4)]

    engine = TensorRTEngine(path, precision="int8", calibrator=batches, cache_dir=tmp_path)
    assert calls == [1]
    assert len(list(tmp_path.glob("*.calib"))) == 1
    batch = make_batch(DilatedNet.input_shape, 2, seed=9)
    outputs = engine.run(batch)
    expected = TorchEngine(model).run(batch)
    assert relative_error(outputs["output_0"], expected["output_0"]) < 0.1
