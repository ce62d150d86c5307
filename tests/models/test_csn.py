"""CSN: exact sizes and keys of the paper models, frozen BN, multi-head, clip pre-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models import csn
from models.layers import FrozenBatchNorm3d, freeze_batchnorm
from models.registry import ModelError


def _meta(builder, **kwargs) -> csn.CSN:
    with torch.device("meta"):
        return builder(**kwargs)


def _parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        pytest.param(csn.ir_csn_152, 29_703_568, id="ir_csn_152"),
        pytest.param(csn.ip_csn_152, 33_016_592, id="ip_csn_152"),
        pytest.param(csn.ir_csn_50, 13_131_152, id="ir_csn_50"),
    ],
)
def test_paper_parameter_counts_with_400_classes(builder, expected: int) -> None:
    assert _parameters(_meta(builder, num_classes=400)) == expected


def test_ir_csn_152_backbone_maps_32x224x224_to_2048x4x7x7() -> None:
    # The real 152 on the meta device: the full shape math, without the compute.
    model = _meta(csn.ir_csn_152)
    with torch.device("meta"):
        features = model.backbone(torch.empty(1, 3, 32, 224, 224))
    assert tuple(features.shape) == (1, 2048, 4, 7, 7)


def test_ir_keys_are_mmaction2() -> None:
    state = _meta(csn.ir_csn_152).state_dict()
    expected_shapes = {
        "backbone.conv1.conv.weight": (64, 3, 3, 7, 7),
        "backbone.conv1.bn.running_var": (64,),
        "backbone.layer1.0.conv1.conv.weight": (64, 64, 1, 1, 1),
        "backbone.layer1.0.conv2.0.conv.weight": (64, 1, 3, 3, 3),
        "backbone.layer1.0.conv2.0.bn.weight": (64,),
        "backbone.layer1.0.conv3.conv.weight": (256, 64, 1, 1, 1),
        "backbone.layer2.0.downsample.conv.weight": (512, 256, 1, 1, 1),
        "backbone.layer2.0.downsample.bn.bias": (512,),
        "backbone.layer3.35.conv2.0.conv.weight": (256, 1, 3, 3, 3),
        "backbone.layer4.2.conv3.bn.num_batches_tracked": (),
        "cls_head.fc_cls.weight": (400, 2048),
        "cls_head.fc_cls.bias": (400,),
    }
    assert {key: tuple(state[key].shape) for key in expected_shapes} == expected_shapes
    assert not any(".conv2.1." in key for key in state)
    assert "backbone.layer2.1.downsample.conv.weight" not in state


def test_ip_keys_are_mmaction2() -> None:
    state = _meta(csn.ip_csn_152).state_dict()
    assert tuple(state["backbone.layer1.0.conv2.0.conv.weight"].shape) == (64, 64, 1, 1, 1)
    assert "backbone.layer1.0.conv2.0.bn.running_mean" in state
    assert tuple(state["backbone.layer4.0.conv2.1.conv.weight"].shape) == (512, 1, 3, 3, 3)
    assert "backbone.layer4.0.conv2.1.bn.weight" in state


def test_batchnorm_eps_is_1e_3() -> None:
    norms = [m for m in csn.ir_csn_tiny().modules() if isinstance(m, nn.BatchNorm3d)]
    assert norms and {norm.eps for norm in norms} == {1e-3}


def test_tiny_forward_gives_class_logits() -> None:
    torch.manual_seed(0)
    model = csn.ir_csn_tiny(num_classes=24).eval()
    with torch.inference_mode():
        logits = model(torch.randn(1, 3, 8, 112, 112))
    assert logits.shape == (1, 24)
    assert torch.isfinite(logits).all()


def test_frozen_bn_stays_in_eval_and_does_not_train() -> None:
    torch.manual_seed(0)
    model = csn.ir_csn_tiny(num_classes=3, frozen_bn=True)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    assert norms and all(isinstance(norm, FrozenBatchNorm3d) for norm in norms)
    assert not any(norm.training for norm in norms)
    assert model.cls_head.dropout.training
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert all(norm.weight.grad is None and norm.bias.grad is None for norm in norms)
    assert model.backbone.conv1.conv.weight.grad is not None
    assert set(after) == set(csn.ir_csn_tiny(num_classes=3).state_dict())


def test_freeze_batchnorm_keeps_state_and_outputs() -> None:
    torch.manual_seed(0)
    model = csn.ir_csn_tiny(num_classes=3).eval()
    clip = torch.randn(2, 3, 4, 32, 32)
    model.train()
    model(clip)  # move running statistics away from their initial values
    model.eval()
    with torch.inference_mode():
        expected = model.backbone(clip)
    keys = list(model.state_dict())
    freeze_batchnorm(model).train()  # the backbone has no dropout; its BN must act as in eval
    with torch.inference_mode():
        frozen = model.backbone(clip)
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(frozen, expected)


def test_multi_head_returns_named_logits_and_keeps_backbone_keys() -> None:
    heads = {"video": 24, "head": 7, "hand": 5}
    model = csn.ir_csn_tiny(num_classes=heads).eval()
    with torch.inference_mode():
        logits = model(torch.randn(2, 3, 4, 32, 32))
    assert {name: tuple(value.shape) for name, value in logits.items()} == {
        "video": (2, 24),
        "head": (2, 7),
        "hand": (2, 5),
    }
    state = model.state_dict()
    assert "cls_head.fc_cls.video.weight" in state
    single = csn.ir_csn_tiny(num_classes=24).state_dict()
    backbone = {key for key in single if key.startswith("backbone.")}
    assert backbone == {key for key in state if key.startswith("backbone.")}


def test_normalize_clip_layout_and_values() -> None:
    frames = np.zeros((2, 3, 4, 3), dtype=np.uint8)  # T,H,W,C
    frames[..., 0] = 255
    frames[1, 2, 3] = (124, 116, 104)
    clip = csn.normalize_clip(frames)
    assert clip.shape == (1, 3, 2, 3, 4) and clip.dtype == torch.float32
    assert clip[0, 0, 0, 0, 0].item() == pytest.approx((255 - 123.675) / 58.395)
    assert clip[0, 1, 0, 0, 0].item() == pytest.approx(-116.28 / 57.12)
    assert clip[0, :, 1, 2, 3].tolist() == pytest.approx(  # float32 arithmetic
        [(124 - 123.675) / 58.395, (116 - 116.28) / 57.12, (104 - 103.53) / 57.375], abs=1e-6
    )
    batch = csn.normalize_clip(torch.from_numpy(np.stack([frames, frames])))
    assert batch.shape == (2, 3, 2, 3, 4)


@pytest.mark.parametrize(
    "shape",
    [pytest.param((3, 4, 3), id="no-time"), pytest.param((2, 3, 4, 1), id="one-channel")],
)
def test_normalize_clip_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError):
        csn.normalize_clip(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param((100, 4, 2, 2), [[23, 25, 27, 29], [69, 71, 73, 75]], id="two-centred"),
        pytest.param((10, 8, 2, 1), [[0, 2, 4, 6, 8, 0, 2, 4]], id="short-video-loops"),
        pytest.param((3, 2, 1, 2), [[0, 1], [1, 2]], id="one-start-each"),
        pytest.param((8, 8, 1, 1), [list(range(8))], id="exact-fit"),
    ],
)
def test_sample_clip_indices_test_mode(args: tuple[int, int, int, int], expected) -> None:
    assert csn.sample_clip_indices(*args, mode="test").tolist() == expected


def test_sample_clip_indices_reports_seven_test_clips() -> None:
    # 300 frames, 32x2 clips: 237 start positions in 7 segments of 33.857; centres floor to:
    indices = csn.sample_clip_indices(300, 32, 2, 7, mode="test")
    assert indices[:, 0].tolist() == [16, 50, 84, 118, 152, 186, 220]
    assert indices.shape == (7, 32) and indices.max() == 282


def test_sample_clip_indices_uniform_stays_in_its_segment() -> None:
    starts_available, clips = 100 - 8 * 2 + 1, 5
    segment = starts_available / clips
    first = csn.sample_clip_indices(100, 8, 2, clips, "uniform", np.random.default_rng(1))
    second = csn.sample_clip_indices(100, 8, 2, clips, "uniform", np.random.default_rng(2))
    for indices in (first, second):
        offsets = indices[:, 0]
        assert all(i * segment <= o < (i + 1) * segment for i, o in enumerate(offsets))
        assert (np.diff(indices, axis=1) == 2).all() and indices.max() < 100
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(
    ("args", "mode"),
    [
        pytest.param((0, 8, 2, 1), "test", id="no-frames"),
        pytest.param((10, 8, 0, 1), "test", id="zero-stride"),
        pytest.param((10, 8, 1, 1), "dense", id="unknown-mode"),
    ],
)
def test_sample_clip_indices_rejects_bad_arguments(args, mode: str) -> None:
    with pytest.raises(ModelError):
        csn.sample_clip_indices(*args, mode=mode)
