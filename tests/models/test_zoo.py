"""Every registered model: size, output shape with a non-default class count; the small ones run
for real and match their ONNX export; the `run.py models` command (info, convert, export)."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from torch import nn

import models
from cli.main import main
from engines.base import named_outputs
from engines.onnx_export import export_onnx
from models.csn import CSN
from models.hrnet import HRNet
from models.part_refiner import PartRefiner
from models.yolof import YOLOF

NUM_CLASSES = 5
# Exact parameter counts at the default class count (DESIGN.md §3).
EXACT_PARAMETERS = {
    "ir_csn_152": 29_703_568,
    "ip_csn_152": 33_016_592,
    "ir_csn_50": 13_131_152,
    "hrnet_w48": 63_595_745,
}
# Counts DESIGN.md gives rounded to 0.01M.
ROUNDED_PARAMETERS_M = {"yolof_r50": 44.16, "yolof_r101": 63.15}
# Paper-size models run on the meta device only: full shape math, no compute.
REAL_FORWARD = (
    "ir_csn_tiny", "ip_csn_tiny", "hrnet_tiny", "hrnet_tiny_v2", "hrnet_small_v2", "yolof_tiny",
    "yolof_tiny_dc5", "part_refiner_tiny",
)  # fmt: skip


def _expected_shapes(model: nn.Module, batch: int, classes: int) -> list[tuple[int, ...]]:
    """The output shapes a model family gives for a batch at its `input_shape`."""
    if isinstance(model, CSN):
        return [(batch, classes)]
    if isinstance(model, HRNet):
        _, height, width = model.input_shape
        return [(batch, classes, height // 4, width // 4)]
    if isinstance(model, YOLOF):
        _, height, width = model.input_shape
        grid = (height // model.stride, width // model.stride)
        anchors = len(model.anchor_sizes)
        return [(batch, anchors * classes, *grid), (batch, anchors * 4, *grid)]
    if isinstance(model, PartRefiner):
        return [(batch, classes, 4)]
    raise AssertionError(f"no expected output shape for {type(model).__name__}; add its family")


def _shapes(outputs) -> list[tuple[int, ...]]:
    return [tuple(value.shape) for value in named_outputs(outputs).values()]


@pytest.mark.parametrize("name", models.names())
def test_size_and_output_shape_with_non_default_classes(name: str) -> None:
    with torch.device("meta"):
        default = models.build(name)
        model = models.build(name, num_classes=NUM_CLASSES).eval()
        outputs = model(torch.empty(2, *model.input_shape))
    parameters = sum(parameter.numel() for parameter in default.parameters())
    if name in EXACT_PARAMETERS:
        assert parameters == EXACT_PARAMETERS[name]
    elif name in ROUNDED_PARAMETERS_M:
        assert round(parameters / 1e6, 2) == ROUNDED_PARAMETERS_M[name]
    assert parameters > 0 and default.num_classes != NUM_CLASSES
    assert model.num_classes == NUM_CLASSES
    assert _shapes(outputs) == _expected_shapes(model, 2, NUM_CLASSES)


@pytest.mark.parametrize("name", REAL_FORWARD)
def test_small_model_runs_and_matches_onnx(name: str, tmp_path: Path) -> None:
    assert name in models.names()
    torch.manual_seed(0)
    model = models.build(name, num_classes=NUM_CLASSES).eval()
    example = torch.randn(1, *model.input_shape)
    with torch.inference_mode():
        expected = named_outputs(model(example))
    assert [tuple(v.shape) for v in expected.values()] == _expected_shapes(model, 1, NUM_CLASSES)
    assert all(torch.isfinite(value).all() for value in expected.values())
    path = export_onnx(model, example, tmp_path / f"{name}.onnx", name=name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = torch.cat([example, torch.randn(1, *model.input_shape)])  # dynamic batch of 2
    onnx_outputs = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    with torch.inference_mode():
        torch_outputs = named_outputs(model(batch))
    for (key, reference), actual in zip(torch_outputs.items(), onnx_outputs, strict=True):
        torch.testing.assert_close(
            torch.from_numpy(actual), reference, rtol=1e-3, atol=1e-4, msg=key
        )


def test_models_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", "ir_csn_tiny", "hrnet_tiny", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["ir_csn_tiny"]["input_shape"] == [3, 8, 112, 112]
    assert rows["hrnet_tiny"]["input_shape"] == [3, 256, 192]
    tiny_parameters = sum(p.numel() for p in models.build("hrnet_tiny").parameters())
    assert rows["hrnet_tiny"]["parameters"] == tiny_parameters
    assert all(row["gflops"] > 0 for row in rows.values())


def test_models_info_unknown_name_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", "resnet_9000"]) == 2
    assert "unknown models ['resnet_9000']" in capsys.readouterr().err


def test_models_convert_then_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    kinetics = models.build("ir_csn_tiny", num_classes=400)
    source = tmp_path / "k400.pth"
    torch.save({"meta": {}, "state_dict": kinetics.state_dict()}, source)
    names = tmp_path / "classes.txt"
    names.write_text("dance\njump\nrun\n")
    converted = tmp_path / "parser.safetensors"
    convert = ["models", "convert", str(source), str(converted), "--arch", "ir_csn_tiny"]
    assert main([*convert, "--classes", str(names)]) == 2
    assert "checkpoint head has 400 classes, model has 3" in capsys.readouterr().err
    assert main([*convert, "--classes", str(names), "--reinit-head"]) == 0
    model, report = models.build_from_checkpoint(converted)
    assert report.classes == ["dance", "jump", "run"]
    assert torch.equal(model.backbone.conv1.conv.weight, kinetics.backbone.conv1.conv.weight)
    onnx_path = tmp_path / "parser.onnx"
    export = ["models", "export", "ir_csn_tiny", str(onnx_path), "--weights", str(converted)]
    assert main(export) == 0
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[1] == 3
    assert (
        main(["models", "export", "hrnet_tiny", str(onnx_path), "--weights", str(converted)]) == 2
    )
