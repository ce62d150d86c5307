"""The shared training loop: schedule, optimiser, logging, exact resume, config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config import ConfigError, validate
from training.common import (
    LAST_CHECKPOINT,
    LOG_FILE,
    Checkpointer,
    JsonlLog,
    TrainConfigBase,
    TrainError,
    WarmupStepLR,
    epoch_rng,
    fit,
    make_optimizer,
    seed_everything,
)

BATCHES_PER_EPOCH = 4
FEATURES = 6


def _config(tmp_path: Path, **changes: object) -> TrainConfigBase:
    fields = {
        "data": tmp_path,
        "out": tmp_path / "out",
        "seed": 3,
        "epochs": 2,
        "batch_size": 8,
        "lr": 0.01,
        "milestones": (1,),
        "warmup_iters": 3,
        "log_interval": 2,
    }
    return TrainConfigBase(**{**fields, **changes})


def _batches(seed: int):
    """Regression batches of a fixed linear target, drawn from (seed, epoch)."""
    weights = torch.arange(FEATURES, dtype=torch.float32)

    def batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        rng = epoch_rng(seed, epoch)
        inputs = torch.from_numpy(rng.normal(size=(BATCHES_PER_EPOCH, 8, FEATURES))).float()
        return [(x, x @ weights) for x in inputs]

    return batches


def _model(seed: int) -> nn.Module:
    seed_everything(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.Dropout(0.2), nn.Linear(16, 1))


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    inputs, targets = batch
    return {"loss_mse": ((model(inputs).squeeze(1) - targets) ** 2).mean()}


def test_warmup_then_step_decay_matches_the_formula() -> None:
    optimizer = make_optimizer(nn.Linear(2, 1).parameters(), lr=0.1)
    scheduler = WarmupStepLR(
        optimizer, iters_per_epoch=10, milestones_epochs=(2, 3), warmup_iters=5, warmup_ratio=0.001
    )
    lrs = []
    for _ in range(40):
        lrs.append(scheduler.get_last_lr()[0])
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1 * 0.001)
    assert lrs[2] == pytest.approx(0.1 * (1 - 0.999 * (1 - 2 / 5)))
    assert lrs[5:20] == pytest.approx([0.1] * 15)
    assert lrs[20:30] == pytest.approx([0.01] * 10)
    assert lrs[30:] == pytest.approx([0.001] * 10)
    restored = WarmupStepLR(optimizer, 10, (2, 3), warmup_iters=5)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.get_last_lr()[0] == pytest.approx(0.001)


def test_optimizer_is_nesterov_sgd_with_the_reports_defaults() -> None:
    optimizer = make_optimizer(nn.Linear(2, 1).parameters(), lr=0.01)
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["nesterov"]) == (0.9, 1e-4, True)
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(TrainError, match="no trainable parameters"):
        make_optimizer(frozen.parameters(), lr=0.01)


def test_fit_reduces_the_loss_and_logs(tmp_path: Path) -> None:
    config = _config(tmp_path, epochs=3, warmup_iters=0, milestones=())
    model = _model(config.seed)
    batches = _batches(config.seed)
    model.eval()
    with torch.no_grad():
        before = float(np.mean([_mse(model, batch)["loss_mse"] for batch in batches(0)]))

    def validate(trained: nn.Module) -> dict[str, float]:
        return {"mse": _mse(trained, batches(0)[0])["loss_mse"].item()}

    metrics = fit(model, batches, _mse, config, config.out, validate=validate)
    assert metrics["iterations"] == 3 * BATCHES_PER_EPOCH
    assert metrics["val_mse"] < before / 2
    records = JsonlLog(config.out / LOG_FILE).read()
    losses = [r for r in records if "loss" in r]
    assert [r["iter"] for r in losses] == [2, 4, 6, 8, 10, 12]
    assert {"epoch", "loss", "loss_mse", "lr", "time"} <= set(losses[0])
    assert [r["epoch"] for r in records if "val" in r] == [1, 2, 3]
    assert (config.out / LAST_CHECKPOINT).is_file()


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = _config(tmp_path, out=tmp_path / "straight")
    model_a = _model(straight.seed)
    fit(model_a, _batches(straight.seed), _mse, straight, straight.out)

    first_leg = _config(tmp_path, out=tmp_path / "resumed", epochs=1)
    model_b = _model(first_leg.seed)
    fit(model_b, _batches(first_leg.seed), _mse, first_leg, first_leg.out)
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    model_c = _model(99)  # a different init: resume must restore the weights
    second_leg = _config(tmp_path, out=tmp_path / "resumed")
    metrics = fit(model_c, _batches(second_leg.seed), _mse, second_leg, second_leg.out, resume=True)

    assert metrics["iterations"] == 2 * BATCHES_PER_EPOCH
    for (name, a), (_, c) in zip(
        model_a.state_dict().items(), model_c.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, c, rtol=0, atol=0, msg=name)


def test_resume_without_checkpoint_fails_clearly(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(TrainError, match="cannot resume: .*last.pt does not exist"):
        fit(_model(0), _batches(0), _mse, config, config.out, resume=True)


def test_non_finite_loss_stops_training(tmp_path: Path) -> None:
    config = _config(tmp_path)

    def nan_loss(model: nn.Module, batch: object) -> dict[str, torch.Tensor]:
        return {"loss_bad": model[0].weight.sum() * float("nan")}

    with pytest.raises(TrainError, match="not finite at epoch 1"):
        fit(_model(0), _batches(0), nan_loss, config, config.out)


def test_final_weights_are_saved_in_our_format(tmp_path: Path) -> None:
    import models

    model = models.build("yolof_tiny", num_classes=2)
    path = Checkpointer(tmp_path).save_weights(
        model, "det", "yolof_tiny", ["a", "b"], {"input_shape": [3, 64, 64]}
    )
    rebuilt, report = models.build_from_checkpoint(path)
    assert path.name == "det.safetensors" and report.classes == ["a", "b"]
    assert models.read_metadata(path)["input_shape"] == "[3, 64, 64]"


def test_config_with_a_missing_split_names_file_key_and_path(tmp_path: Path) -> None:
    data = {"data": str(tmp_path / "no_split"), "out": "o", "epochs": 1, "batch_size": 1, "lr": 0.1}
    with pytest.raises(ConfigError) as error:
        validate(TrainConfigBase, data, "configs/train/x.yaml")
    message = str(error.value)
    assert message.startswith("configs/train/x.yaml: data:") and "no_split" in message
    assert "\n" not in message
