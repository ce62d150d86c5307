"""Checkpoints: our format, every foreign layout built from real models, strictness, safety."""

from __future__ import annotations

import builtins
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import models
from models.checkpoint import FORMAT
from models.registry import ModelError


def _randomised(name: str, **kwargs) -> nn.Module:
    """A model whose every tensor (buffers included) holds distinct random values."""
    torch.manual_seed(0)
    model = models.build(name, **kwargs)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            else:
                tensor.fill_(7)
    return model


def _assert_same_state(loaded: nn.Module, source: nn.Module) -> None:
    expected = source.state_dict()
    actual = loaded.state_dict()
    assert actual.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(actual[key], tensor), key


def _vmz_key(key: str) -> str:
    """Our (mmaction2) CSN key -> the VMZ / torchvision VideoResNet key, written out by hand."""
    key = key.removeprefix("backbone.")
    key = key.replace("conv1.conv.", "stem.0.", 1) if key.startswith("conv1.") else key
    key = key.replace("conv1.bn.", "stem.1.", 1) if key.startswith("conv1.") else key
    key = key.replace("cls_head.fc_cls.", "fc.")
    for part in ("conv1", "conv3", "downsample"):
        key = key.replace(f".{part}.conv.", f".{part}.0.").replace(f".{part}.bn.", f".{part}.1.")
    return key


def _vmz_ir(key: str) -> str:
    key = _vmz_key(key)
    return key.replace(".conv2.0.conv.", ".conv2.0.").replace(".conv2.0.bn.", ".conv2.1.")


def _vmz_ip(key: str) -> str:
    key = _vmz_key(key)
    for ours, theirs in (
        (".conv2.0.conv.", ".conv2.0.0."),
        (".conv2.0.bn.", ".conv2.0.1."),
        (".conv2.1.conv.", ".conv2.0.2."),
        (".conv2.1.bn.", ".conv2.1."),
    ):
        if ours in key:
            return key.replace(ours, theirs)
    return key


def test_vmz_key_helper_matches_torchvision_naming() -> None:
    assert _vmz_ip("backbone.layer2.0.conv2.1.bn.running_var") == "layer2.0.conv2.1.running_var"
    assert _vmz_ip("backbone.layer2.0.conv2.1.conv.weight") == "layer2.0.conv2.0.2.weight"
    assert _vmz_ir("backbone.layer1.0.conv2.0.bn.weight") == "layer1.0.conv2.1.weight"
    assert _vmz_ir("backbone.conv1.bn.bias") == "stem.1.bias"
    assert _vmz_ir("backbone.layer3.0.downsample.bn.bias") == "layer3.0.downsample.1.bias"


def _saved(path: Path, state: dict[str, torch.Tensor], wrap: bool = True) -> Path:
    torch.save(
        {"meta": {"epoch": 58, "CLASSES": ["a"]}, "state_dict": state} if wrap else state, path
    )
    return path


@pytest.mark.parametrize(
    ("arch", "rename", "layout"),
    [
        pytest.param("ir_csn_tiny", lambda k: k, "mmaction2", id="mmaction2-ir"),
        pytest.param("ip_csn_tiny", lambda k: k, "mmaction2", id="mmaction2-ip"),
        pytest.param("ir_csn_tiny", _vmz_ir, "vmz", id="vmz-ir"),
        pytest.param("ip_csn_tiny", _vmz_ip, "vmz", id="vmz-ip"),
        pytest.param("hrnet_tiny", lambda k: k, "mmpose", id="mmpose-1x"),
        pytest.param(
            "hrnet_tiny",
            lambda k: re.sub(r"^head\.", "keypoint_head.", k),
            "mmpose0",
            id="mmpose-0x",
        ),
        pytest.param("yolof_tiny", lambda k: k, "mmdet", id="mmdet"),
    ],
)
def test_foreign_layouts_load_strictly(tmp_path: Path, arch: str, rename, layout: str) -> None:
    source = _randomised(arch, num_classes=6)
    state = {rename(key): value for key, value in source.state_dict().items()}
    path = _saved(tmp_path / "foreign.pth", state)
    target = models.build(arch, num_classes=6)
    report = models.load_checkpoint(target, path)
    assert report.layout == layout and report.loaded == len(state)
    _assert_same_state(target, source)
    named = models.build(arch, num_classes=6)
    assert models.load_checkpoint(named, path, layout).layout == layout


def test_vmz_checkpoint_really_uses_torchvision_names(tmp_path: Path) -> None:
    state = {_vmz_ip(k): v for k, v in _randomised("ip_csn_tiny").state_dict().items()}
    assert {"stem.0.weight", "layer1.0.conv2.0.0.weight", "layer1.0.downsample.1.bias"} <= set(
        state
    )
    assert "fc.weight" in state and not any(key.startswith("backbone.") for key in state)


def test_data_parallel_prefix_and_missing_batch_counters(tmp_path: Path) -> None:
    source = _randomised("ir_csn_tiny")
    state = {
        f"module.{key}": value
        for key, value in source.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    target = models.build("ir_csn_tiny")
    models.load_checkpoint(target, _saved(tmp_path / "dp.pt", state, wrap=False), "mmaction2")
    for key, tensor in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(target.state_dict()[key], tensor)


def test_own_format_round_trip(tmp_path: Path) -> None:
    heads = {"video": ["a", "b", "c"], "head": ["x", "y"]}
    source = _randomised("ir_csn_tiny", num_classes={"video": 3, "head": 2})
    path = models.save_checkpoint(
        source, tmp_path / "w.safetensors", "ir_csn_tiny", heads, {"epoch": 4}
    )
    metadata = models.read_metadata(path)
    assert metadata["format"] == FORMAT and metadata["arch"] == "ir_csn_tiny"
    assert metadata["epoch"] == "4"
    model, report = models.build_from_checkpoint(path)
    assert report.layout == "tps" and report.classes == heads and report.arch == "ir_csn_tiny"
    _assert_same_state(model, source)
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(clip), source.eval()(clip))


def test_save_checks_classes_and_reserved_metadata(tmp_path: Path) -> None:
    model = models.build("ir_csn_tiny", num_classes=3)
    with pytest.raises(ModelError, match="do not fit"):
        models.save_checkpoint(model, tmp_path / "a.safetensors", "ir_csn_tiny", ["a", "b"])
    with pytest.raises(ModelError, match="reserved"):
        models.save_checkpoint(
            model, tmp_path / "b.safetensors", "ir_csn_tiny", ["a", "b", "c"], {"arch": "x"}
        )


def test_head_class_mismatch_is_named_and_reinit_head_loads_the_rest(tmp_path: Path) -> None:
    kinetics = _randomised("ir_csn_tiny", num_classes=400)
    path = _saved(tmp_path / "k400.pth", kinetics.state_dict())
    model = models.build("ir_csn_tiny", num_classes=24)
    with pytest.raises(ModelError, match="checkpoint head has 400 classes, model has 24"):
        models.load_checkpoint(model, path)
    fresh_head = model.cls_head.fc_cls.weight.detach().clone()
    report = models.load_checkpoint(model, path, reinit_head=True)
    assert report.reinitialised == ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias")
    assert torch.equal(model.cls_head.fc_cls.weight, fresh_head)
    assert torch.equal(
        model.backbone.layer4[0].conv3.conv.weight, kinetics.backbone.layer4[0].conv3.conv.weight
    )


def test_single_head_checkpoint_into_multi_head_model_with_reinit(tmp_path: Path) -> None:
    path = _saved(tmp_path / "k400.pth", _randomised("ir_csn_tiny").state_dict())
    model = models.build("ir_csn_tiny", num_classes={"video": 24, "leg": 9})
    with pytest.raises(ModelError, match="4 missing keys.*2 unexpected keys"):
        models.load_checkpoint(model, path)
    report = models.load_checkpoint(model, path, reinit_head=True)
    assert len(report.reinitialised) == 4


def test_every_disagreement_is_listed_in_one_message(tmp_path: Path) -> None:
    state = _randomised("hrnet_tiny").state_dict()
    del state["backbone.conv1.weight"]
    state["backbone.extra.weight"] = torch.zeros(1)
    state["backbone.bn1.weight"] = torch.zeros(3)
    path = _saved(tmp_path / "bad.pth", state)
    with pytest.raises(ModelError) as caught:
        models.load_checkpoint(models.build("hrnet_tiny"), path)
    message = str(caught.value)
    assert "1 missing keys (backbone.conv1.weight)" in message
    assert "1 unexpected keys (backbone.extra.weight)" in message
    assert "1 shape mismatches (backbone.bn1.weight: checkpoint 3 vs model 64)" in message
    assert "\n" not in message


def test_wrong_family_fails_with_counts(tmp_path: Path) -> None:
    path = _saved(tmp_path / "pose.pth", _randomised("hrnet_tiny").state_dict())
    with pytest.raises(ModelError, match=r"missing keys .*unexpected keys"):
        models.load_checkpoint(models.build("ir_csn_tiny"), path, "mmaction2")


class _CreatesFile:
    """Pickles as a call to `open(marker, "w")`: loading it with plain pickle creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def test_code_running_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _CreatesFile(marker)}, path)
    with pytest.raises(ModelError, match="refusing to load"):
        models.load_checkpoint(models.build("ir_csn_tiny"), path)
    assert not marker.exists()
    # The payload is real: an unsafe load does run it.
    torch.load(path, weights_only=False)["payload"].close()
    assert marker.exists()


@pytest.mark.parametrize(
    ("name", "content", "layout", "match"),
    [
        pytest.param("none.pth", None, "auto", "does not exist", id="missing-file"),
        pytest.param("w.onnx", b"x", "auto", "expected a .safetensors", id="suffix"),
        pytest.param("junk.pth", b"not a zip", "auto", "cannot read", id="corrupt"),
        pytest.param("junk.safetensors", b"\x00" * 4, "auto", "cannot read", id="corrupt-st"),
        pytest.param("ok.pth", "state", "caffe2", "unknown checkpoint layout", id="layout"),
        pytest.param("odd.pth", "odd-keys", "auto", "cannot tell the checkpoint layout", id="auto"),
        pytest.param("list.pth", "not-tensors", "auto", "not tensors", id="not-tensors"),
    ],
)
def test_unreadable_checkpoints(tmp_path: Path, name, content, layout, match) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "state":
        torch.save(models.build("ir_csn_tiny").state_dict(), path)
    elif content == "odd-keys":
        torch.save({"weights.0": torch.zeros(1)}, path)
    elif content == "not-tensors":
        torch.save({"state_dict": {"a": [1, 2]}}, path)
    with pytest.raises(ModelError, match=match):
        models.load_checkpoint(models.build("ir_csn_tiny"), path, layout)


def test_build_from_checkpoint_needs_our_format(tmp_path: Path) -> None:
    path = _saved(tmp_path / "k.pth", _randomised("ir_csn_tiny").state_dict())
    with pytest.raises(ModelError, match="convert it"):
        models.build_from_checkpoint(path)
