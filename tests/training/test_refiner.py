"""The refiner recipe: patches and targets agree (mirrored too), the loss, the config file, and a
tiny real run that writes a checkpoint the parser's stage runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError

from parsing.networks import load_network
from parsing.part_refining import PartRefinerStage, patch_edges
from parsing.settings import NetworkSettings
from tests.training.test_pose import REPO, make_tiny_split
from training.refiner import (
    PartSamples,
    RefinerBatches,
    RefinerConfig,
    evaluate_refiner,
    refiner_loss,
    train_refiner,
)

BOXES = np.array([[20, 30, 27, 37], [60, 40, 75, 48]], np.float32)
"""A square 'hand' and a wide 'foot', inclusive pixels."""


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_split(tmp_path_factory)


def _config(data: Path, **overrides: object) -> RefinerConfig:
    values = {"data": data, "out": "unused", "epochs": 1, "batch_size": 8, "lr": 0.01}
    return RefinerConfig.model_validate(values | overrides)


def _bright_parts() -> PartSamples:
    """One dark frame with the two parts of BOXES painted white."""
    frame = np.zeros((80, 100, 3), np.uint8)
    for x1, y1, x2, y2 in BOXES.astype(int):
        frame[y1 : y2 + 1, x1 : x2 + 1] = 255
    return PartSamples(
        frame[None], np.zeros(2, int), BOXES, np.full(2, 60, np.float32), np.array([0, 1])
    )


def test_every_patch_holds_its_part_where_the_target_says(tiny_split):
    samples = _bright_parts()
    config = _config(tiny_split, batch_size=2, input_size=48, patch_scale=0.6, guess_noise=0.05)
    for epoch in range(6):  # mirrored and unmirrored patches both occur
        for inputs, targets, kinds in RefinerBatches(samples, config, epoch):
            assert inputs.shape == (2, 3, 48, 48) and sorted(kinds.tolist()) == [0, 1]
            for patch, edges in zip(inputs, targets.numpy(), strict=True):
                bright = np.argwhere(patch[0].numpy() > 0)  # rows, columns over the mean
                low = (bright.min(axis=0)[::-1]) / 48
                high = (bright.max(axis=0)[::-1] + 1) / 48
                np.testing.assert_allclose(edges, [*low, *high], atol=1.5 / 48)


class Fixed(torch.nn.Module):
    """A model that answers the same outputs for every patch and type."""

    def __init__(self, answer: torch.Tensor) -> None:
        super().__init__()
        self.answer = answer

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.answer.expand(len(inputs), 2, 4)


def test_the_loss_is_the_l1_of_the_edges_of_the_parts_type():
    target = torch.tensor([[0.4, 0.4, 0.6, 0.7]])
    exact = torch.tensor([0.5, 0.55, np.log(0.2), np.log(0.3)], dtype=torch.float32)
    torch.testing.assert_close(patch_edges(exact[None]), target)
    batch = (torch.zeros(1, 3, 8, 8), target, torch.tensor([1]))
    assert refiner_loss(Fixed(torch.stack((exact * 0, exact))), batch)["loss_edges"].item() < 1e-6
    shifted = exact + torch.tensor([0.1, 0.0, 0.0, 0.0])
    loss = refiner_loss(Fixed(torch.stack((exact, shifted))), batch)["loss_edges"].item()
    assert loss == pytest.approx(0.2, abs=1e-6)  # both x edges of type 1 move by 0.1


def test_a_refined_box_off_its_part_counts_as_iou_zero(tiny_split):
    corner = torch.tensor([0.02, 0.02, np.log(0.01), np.log(0.01)], dtype=torch.float32)
    config = _config(tiny_split, input_size=32, patch_scale=0.6, guess_noise=0.0)
    metrics = evaluate_refiner(Fixed(torch.stack((corner, corner))), _bright_parts(), config)
    assert metrics == {"iou50": 0.0, "mean_iou": 0.0}  # not the scorer's -1 for no overlap


def test_config_file_validates(tiny_split, tmp_path):
    data = yaml.safe_load((REPO / "configs/train/refiner.yaml").read_text())
    config = RefinerConfig.model_validate({**data, "data": tiny_split, "val_data": tiny_split})
    assert config.types == ("hand", "foot") and config.arch == "part_refiner_tiny"
    with pytest.raises(ValidationError, match="patch_scale"):
        RefinerConfig.model_validate({**data, "data": tiny_split, "patch_scale": 0})


def test_train_refiner_writes_a_checkpoint_the_parser_runs(tiny_split, tmp_path):
    config = _config(
        tiny_split, out=tmp_path / "refiner", val_data=tiny_split, frames_per_video=2,
        val_frames_per_video=1, input_size=32, max_iters_per_epoch=3,
    )  # fmt: skip
    metrics = train_refiner(config)
    assert 0.0 <= metrics["val_iou50"] <= 1.0 and 0.0 <= metrics["val_mean_iou"] <= 1.0
    network = load_network(NetworkSettings(weights=tmp_path / "refiner" / "refiner.safetensors"))
    stage = PartRefinerStage(network)
    assert stage.types == ["hand", "foot"] and stage.scale == config.patch_scale
    assert stage.size == 32
    again = evaluate_refiner(network.model, _bright_parts(), config)
    assert set(again) == {"iou50", "mean_iou"}
