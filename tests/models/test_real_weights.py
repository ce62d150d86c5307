"""The conversion script's pieces that run without TensorFlow (make real-weights runs the rest)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from models.real_weights import agreement, unfuse_depthwise

REPO = Path(__file__).resolve().parents[2]
LIGHTNING = REPO / "weights/real/movenet_lightning.onnx"


def _b64(*names: str) -> list[str]:
    return [base64.b64encode(name.encode()).decode() for name in names]


def test_a_fused_depthwise_node_becomes_conv_bias_activation_under_its_own_name():
    node = {
        "name": "net/dw",
        "op": "FusedDepthwiseConv2dNative",
        "input": ["net/x", "net/dw_weights", "net/dw_offset"],
        "attr": {
            "T": {"type": "DT_FLOAT"},
            "fused_ops": {"list": {"s": _b64("BiasAdd", "Relu6")}},
            "num_args": {"i": "1"},
            "padding": {"s": "U0FNRQ=="},
            "data_format": {"s": "TkhXQw=="},
            "explicit_paddings": {"list": {}},
        },
    }
    conv, bias, relu6 = unfuse_depthwise(node)
    assert (conv["op"], conv["input"]) == ("DepthwiseConv2dNative", ["net/x", "net/dw_weights"])
    assert "fused_ops" not in conv["attr"] and "num_args" not in conv["attr"]
    assert (bias["op"], bias["input"]) == ("BiasAdd", [conv["name"], "net/dw_offset"])
    assert (relu6["name"], relu6["op"], relu6["input"]) == ("net/dw", "Relu6", [bias["name"]])


def test_an_unknown_fused_activation_is_refused():
    node = {
        "name": "net/dw",
        "op": "FusedDepthwiseConv2dNative",
        "input": ["x", "w", "b", "alpha"],
        "attr": {
            "T": {},
            "data_format": {},
            "fused_ops": {"list": {"s": _b64("BiasAdd", "Prelu")}},
        },
    }
    with pytest.raises(SystemExit, match="net/dw: cannot unfuse"):
        unfuse_depthwise(node)


def test_a_rebuilt_file_is_checked_by_its_outputs(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    copy = shutil.copy(LIGHTNING, tmp_path / "copy.onnx")
    result = agreement(Path(copy), LIGHTNING, [image], [(192, 192)], atol=1e-4)
    assert result["max_abs_diff"] == 0.0
    model = onnx.load(LIGHTNING)
    kernel = max(model.graph.initializer, key=lambda tensor: np.prod(tensor.dims))  # conv weights
    kernel.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(kernel) * 2, kernel.name))
    onnx.save(model, tmp_path / "changed.onnx")
    with pytest.raises(SystemExit, match="differ from the shipped file"):
        agreement(tmp_path / "changed.onnx", LIGHTNING, [image], [(192, 192)], atol=1e-4)
