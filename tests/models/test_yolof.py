"""YOLOF networks: sizes, mmdet key names, implicit objectness, freezing, ONNX parity, decoding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn

from models.detection import CAFFE_BGR, IMAGENET_RGB, decode, preprocess
from models.layers import FrozenBatchNorm2d
from models.registry import build
from models.resnet2d import ResNetC5
from models.yolof import YOLOF, yolof_r50, yolof_tiny

SEED = 0
NUM_CLASSES = 7
NUM_ANCHORS = 5
PARAMETER_TOLERANCE = 1e-3


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(
    ("name", "expected"),
    [pytest.param("yolof_r50", 44.16e6, id="r50"), pytest.param("yolof_r101", 63.15e6, id="r101")],
)
def test_parameter_count_matches_the_paper_models(name: str, expected: float) -> None:
    model = build(name)
    assert abs(parameter_count(model) - expected) / expected < PARAMETER_TOLERANCE
    assert model.num_classes == 80
    assert model.input_shape == (3, 800, 1216)


def test_state_dict_keys_follow_mmdet() -> None:
    keys = set(yolof_r50().state_dict())
    expected = {
        "backbone.conv1.weight",
        "backbone.bn1.running_var",
        "backbone.layer1.0.conv1.weight",
        "backbone.layer1.0.downsample.0.weight",
        "backbone.layer1.0.downsample.1.bias",
        "backbone.layer4.2.bn3.weight",
        "neck.lateral_conv.weight",
        "neck.lateral_conv.bias",
        "neck.lateral_norm.weight",
        "neck.fpn_conv.weight",
        "neck.fpn_norm.running_mean",
        "neck.dilated_encoder_blocks.3.conv1.conv.weight",
        "neck.dilated_encoder_blocks.3.conv2.bn.weight",
        "neck.dilated_encoder_blocks.0.conv3.bn.running_mean",
        "bbox_head.cls_subnet.1.conv.weight",
        "bbox_head.cls_subnet.1.bn.bias",
        "bbox_head.bbox_subnet.3.conv.weight",
        "bbox_head.cls_score.bias",
        "bbox_head.bbox_pred.weight",
        "bbox_head.object_pred.weight",
    }
    assert expected <= keys
    assert {key.split(".")[0] for key in keys} == {"backbone", "neck", "bbox_head"}
    assert not any(key.startswith("backbone.fc") for key in keys)
    assert "neck.dilated_encoder_blocks.0.conv1.conv.bias" not in keys
    assert "bbox_head.cls_subnet.2.conv.weight" not in keys
    assert "bbox_head.bbox_subnet.4.conv.weight" not in keys


def test_tiny_forward_shapes_with_a_non_default_class_count() -> None:
    torch.manual_seed(SEED)
    model = build("yolof_tiny", num_classes=NUM_CLASSES).eval()
    assert isinstance(model, YOLOF)
    assert (model.num_classes, model.stride, model.input_shape) == (NUM_CLASSES, 32, (3, 256, 256))
    assert model.anchor_sizes == (32, 64, 128, 256, 512)
    with torch.no_grad():
        cls_logits, bbox_deltas = model(torch.randn(2, *model.input_shape))
    assert cls_logits.shape == (2, NUM_ANCHORS * NUM_CLASSES, 8, 8)
    assert bbox_deltas.shape == (2, NUM_ANCHORS * 4, 8, 8)
    assert cls_logits.dtype == bbox_deltas.dtype == torch.float32
    assert torch.isfinite(cls_logits).all() and torch.isfinite(bbox_deltas).all()


@pytest.mark.parametrize(
    ("cls_bias", "obj_bias"),
    [
        pytest.param(0.0, 0.0, id="zero"),
        pytest.param(2.0, -1.0, id="mixed"),
        pytest.param(100.0, 100.0, id="overflow-clamped"),
    ],
)
def test_implicit_objectness_known_values(cls_bias: float, obj_bias: float) -> None:
    head = yolof_tiny(num_classes=3).bbox_head.eval()
    for conv, bias in ((head.cls_score, cls_bias), (head.object_pred, obj_bias)):
        nn.init.zeros_(conv.weight)
        nn.init.constant_(conv.bias, bias)
    with torch.no_grad():
        cls_logits, _ = head(torch.randn(1, 128, 2, 2))
    exp_max = 1e8
    expected = (
        cls_bias
        + obj_bias
        - math.log(1 + min(math.exp(cls_bias), exp_max) + min(math.exp(obj_bias), exp_max))
    )
    assert cls_logits.shape == (1, NUM_ANCHORS * 3, 2, 2)
    torch.testing.assert_close(cls_logits, torch.full_like(cls_logits, expected))


def test_paper_defaults_freeze_backbone_bn_and_stage_one() -> None:
    model = yolof_r50()
    backbone = model.backbone
    assert isinstance(backbone.bn1, FrozenBatchNorm2d)
    assert isinstance(backbone.layer3[0].bn2, FrozenBatchNorm2d)
    assert not backbone.conv1.weight.requires_grad
    assert not backbone.layer1[0].conv2.weight.requires_grad
    assert backbone.layer2[0].conv2.weight.requires_grad
    model.train()
    assert not backbone.layer4[0].bn1.training
    assert model.neck.lateral_norm.training and model.bbox_head.cls_subnet[0].bn.training
    assert type(model.neck.lateral_norm) is nn.BatchNorm2d


def test_style_places_the_stride_and_picks_the_normalisation() -> None:
    pytorch_style = yolof_tiny()
    caffe_style = yolof_tiny(style="caffe")
    assert pytorch_style.backbone.layer2[0].conv2.stride == (2, 2)
    assert pytorch_style.backbone.layer2[0].conv1.stride == (1, 1)
    assert caffe_style.backbone.layer2[0].conv1.stride == (2, 2)
    assert caffe_style.backbone.layer2[0].conv2.stride == (1, 1)
    assert (pytorch_style.normalization, caffe_style.normalization) == (IMAGENET_RGB, CAFFE_BGR)
    caffe_style.load_state_dict(pytorch_style.state_dict())


def test_tiny_onnx_export_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(SEED)
    model = yolof_tiny(num_classes=NUM_CLASSES).eval()
    images = torch.randn(1, *model.input_shape)
    path = tmp_path / "yolof_tiny.onnx"
    torch.onnx.export(
        model,
        (images,),
        str(path),
        input_names=["images"],
        output_names=["cls_logits", "bbox_deltas"],
        dynamo=True,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_cls, onnx_deltas = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        torch_cls, torch_deltas = model(images)
    np.testing.assert_allclose(onnx_cls, torch_cls.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(onnx_deltas, torch_deltas.numpy(), rtol=1e-4, atol=1e-4)


def test_tiny_end_to_end_detections_lie_inside_the_original_image() -> None:
    torch.manual_seed(SEED)
    model = yolof_tiny(num_classes=NUM_CLASSES).eval()
    generator = np.random.default_rng(SEED)
    frames = [
        generator.integers(0, 256, size=(120, 200, 3), dtype=np.uint8),
        generator.integers(0, 256, size=(300, 90, 3), dtype=np.uint8),
    ]
    batch, metas = preprocess(frames, model.input_shape[1:], model.normalization)
    with torch.no_grad():
        cls_logits, bbox_deltas = model(batch)
    results = decode(cls_logits, bbox_deltas, metas, score_thr=0.0, max_per_image=20)
    for found, frame in zip(results, frames, strict=True):
        height, width = frame.shape[:2]
        assert len(found) == 20
        assert found.boxes_xyxy.dtype == torch.float32 and found.labels.dtype == torch.int64
        assert (found.boxes_xyxy[:, 0::2] <= width).all() and (
            found.boxes_xyxy[:, 1::2] <= height
        ).all()
        assert (found.boxes_xyxy >= 0).all()
        assert ((found.labels >= 0) & (found.labels < NUM_CLASSES)).all()
        assert (found.scores[:-1] >= found.scores[1:]).all()


def test_dc5_variant_keeps_layer4_at_stride_16_with_the_same_backbone_weights() -> None:
    torch.manual_seed(SEED)
    model = build("yolof_tiny_dc5", num_classes=NUM_CLASSES).eval()
    plain = yolof_tiny(num_classes=NUM_CLASSES)
    assert (model.stride, model.anchor_sizes) == (16, (8, 16, 32, 64, 128))
    assert (plain.stride, yolof_r50().stride) == (32, 32)
    first = model.backbone.layer4[0]
    assert (first.conv2.stride, first.conv2.dilation, first.conv2.padding) == (
        (1, 1),
        (2, 2),
        (2, 2),
    )
    assert first.downsample[0].stride == (1, 1)
    backbone_shapes = {key: value.shape for key, value in model.backbone.state_dict().items()}
    assert backbone_shapes == {key: v.shape for key, v in plain.backbone.state_dict().items()}
    with torch.no_grad():
        cls_logits, bbox_deltas = model(torch.randn(1, *model.input_shape))
    assert cls_logits.shape == (1, NUM_ANCHORS * NUM_CLASSES, 16, 16)
    assert bbox_deltas.shape == (1, NUM_ANCHORS * 4, 16, 16)


def test_backbone_rejects_an_unsupported_c5_dilation() -> None:
    with pytest.raises(ValueError, match="c5_dilation must be one of"):
        ResNetC5((1, 1, 1, 1), 16, c5_dilation=3)
