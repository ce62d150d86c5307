"""The pose recipe: heatmap targets, flip, loss, PCK, one step, resume, and a tiny real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError

import models
from models.hrnet import decode_heatmaps, heatmaps_to_frame, unflip_heatmaps
from tps.synth.dataset import write_split
from training.common import fit, seed_everything
from training.pose import (
    COCO_KEYPOINT_NAMES,
    PoseBatches,
    PoseConfig,
    PoseSamples,
    flip_samples,
    jitter_boxes,
    keypoint_mse_loss,
    keypoint_targets,
    pck_hits,
    pose_step_loss,
    train_pose,
)

REPO = Path(__file__).resolve().parents[2]

HEATMAP_HW = (16, 12)
INPUT_SHAPE = (3, 64, 64)
"""hrnet_tiny needs sides divisible by 32; heatmaps are 16x16."""
SIGMA = 2.0


def _keypoints(count: int, rng: np.random.Generator, box: tuple[float, ...]) -> np.ndarray:
    """(count, 17, 3) keypoints inside `box` with visibility 2."""
    x1, y1, x2, y2 = box
    xs = rng.uniform(x1 + 2, x2 - 2, (count, 17))
    ys = rng.uniform(y1 + 2, y2 - 2, (count, 17))
    return np.stack((xs, ys, np.full_like(xs, 2.0)), axis=-1)


@pytest.fixture
def samples() -> PoseSamples:
    """Two frames of noise with bright dots at the keypoints of three persons."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 60, (2, 96, 128, 3), dtype=np.uint8)
    boxes = np.array([[10, 8, 50, 88], [70, 10, 110, 90], [30, 20, 70, 92]], dtype=np.float32)
    keypoints = np.concatenate([_keypoints(1, rng, tuple(box)) for box in boxes])
    frame_of = np.array([0, 0, 1])
    for (x, y, _), frame in zip(keypoints.reshape(-1, 3), frame_of.repeat(17), strict=True):
        frames[frame, int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 255
    return PoseSamples(frames, frame_of, boxes, keypoints.astype(np.float32))


def _config(tmp_path: Path, **overrides: object) -> PoseConfig:
    values = {
        "data": tmp_path,
        "out": tmp_path / "out",
        "epochs": 2,
        "batch_size": 2,
        "lr": 0.01,
        "input_shape": INPUT_SHAPE,
        "log_interval": 1,
    }
    return PoseConfig(**{**values, **overrides})


def test_targets_decode_back_to_the_keypoints() -> None:
    crop_boxes = np.array([[10.0, 20.0, 58.0, 84.0]])
    keypoints = np.array([[[30.0, 41.0, 2.0], [12.5, 80.0, 1.0], [5.0, 5.0, 0.0]]])
    targets, weights = keypoint_targets(keypoints, crop_boxes, HEATMAP_HW, SIGMA)
    assert targets.shape == (1, 3, *HEATMAP_HW) and targets.dtype == np.float32
    assert weights.tolist() == [[1.0, 1.0, 0.0]]
    assert not targets[0, 2].any()
    keypoints_xy, scores = decode_heatmaps(torch.from_numpy(targets))
    frame_xy = heatmaps_to_frame(keypoints_xy, crop_boxes, HEATMAP_HW).numpy()
    # one heatmap pixel is 4 frame pixels here; arg-max + quarter shift is within a pixel
    cell = (crop_boxes[0, 2] - crop_boxes[0, 0]) / HEATMAP_HW[1]
    assert np.abs(frame_xy[0, :2] - keypoints[0, :2, :2]).max() <= cell / 2
    assert scores[0, :2].min() > 0.8


def test_keypoint_far_outside_the_crop_gets_no_weight() -> None:
    crop_boxes = np.array([[0.0, 0.0, 48.0, 64.0]])
    keypoints = np.array([[[-40.0, 10.0, 2.0], [47.0, 63.0, 2.0]]])
    _, weights = keypoint_targets(keypoints, crop_boxes, HEATMAP_HW, SIGMA)
    assert weights.tolist() == [[0.0, 1.0]]


def test_flip_matches_the_test_time_unflip() -> None:
    """Targets of a mirrored sample, unflipped as at test time, equal the original targets."""
    rng = np.random.default_rng(1)
    crop_boxes = np.array([[10.0, 20.0, 58.0, 84.0]])
    keypoints = _keypoints(1, rng, (14.0, 24.0, 54.0, 80.0))
    crops = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 3, 2, 4)
    flipped_crops, flipped = flip_samples(crops, keypoints, crop_boxes)
    assert torch.equal(flipped_crops[..., 0], crops[..., -1])
    assert np.allclose(flipped[0, 1, 0], crop_boxes[0, 0] + crop_boxes[0, 2] - keypoints[0, 2, 0])
    original, _ = keypoint_targets(keypoints, crop_boxes, HEATMAP_HW, SIGMA)
    mirrored, _ = keypoint_targets(flipped, crop_boxes, HEATMAP_HW, SIGMA)
    restored = unflip_heatmaps(torch.from_numpy(mirrored)).numpy()
    # unflip shifts one column right; the first column has no source
    assert np.allclose(restored[..., 1:], original[..., 1:], atol=1e-6)
    twice_crops, twice = flip_samples(flipped_crops, flipped, crop_boxes)
    assert torch.equal(twice_crops, crops) and np.allclose(twice, keypoints)


def test_mse_loss_ignores_zero_weight_keypoints() -> None:
    heatmaps = torch.zeros(1, 2, 2, 2)
    targets = torch.ones(1, 2, 2, 2)
    assert keypoint_mse_loss(heatmaps, targets, torch.tensor([[1.0, 0.0]])).item() == 0.5
    assert keypoint_mse_loss(heatmaps, targets, torch.tensor([[1.0, 1.0]])).item() == 1.0


def test_pck_counts_hits_within_the_radius() -> None:
    boxes = np.array([[0.0, 0.0, 50.0, 100.0]])  # radius 0.1 * 100 = 10
    truth = np.array([[[10.0, 10.0, 2.0], [20.0, 20.0, 1.0], [30.0, 30.0, 0.0]]])
    predicted = np.array([[[16.0, 18.0], [20.0, 31.0], [30.0, 30.0]]])
    assert pck_hits(predicted, truth, boxes, 0.1) == (1, 2)


def test_jitter_keeps_boxes_when_off() -> None:
    boxes = np.array([[1.0, 2.0, 30.0, 40.0]])
    rng = np.random.default_rng(0)
    assert np.allclose(jitter_boxes(boxes, 0.0, 0.0, rng), boxes)
    moved = jitter_boxes(boxes, 0.1, 0.2, rng)
    assert not np.allclose(moved, boxes)
    assert np.all(np.abs(moved - boxes) <= 0.1 * 39 + 0.1 * 39 + 1e-9)


def test_batches_have_the_contract_shapes(samples: PoseSamples, tmp_path: Path) -> None:
    config = _config(tmp_path)
    batches = PoseBatches(samples, config, epoch=0)
    assert len(batches) == 1
    crops, targets, weights = next(iter(batches))
    assert crops.shape == (2, *INPUT_SHAPE) and crops.dtype == torch.float32
    assert targets.shape == (2, 17, 16, 16) and weights.shape == (2, 17)
    assert weights.sum() > 0
    again = next(iter(PoseBatches(samples, config, epoch=0)))
    assert torch.equal(again[0], crops)  # the epoch fixes order and augmentation


def test_one_step_reduces_the_loss(samples: PoseSamples, tmp_path: Path) -> None:
    seed_everything(0)
    config = _config(tmp_path, flip_prob=0.0, box_shift=0.0, box_scale=0.0)
    model = models.build("hrnet_tiny", num_classes=17)
    batch = next(iter(PoseBatches(samples, config, epoch=0)))
    step = pose_step_loss(config.loss_weight)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    before = step(model, batch)["loss_kpt"]
    before.backward()
    optimizer.step()
    after = step(model, batch)["loss_kpt"]
    assert after.item() < before.item()


def test_resume_continues_identically(samples: PoseSamples, tmp_path: Path) -> None:
    def run(out: Path, epochs: int, resume: bool) -> dict[str, torch.Tensor]:
        config = _config(tmp_path, out=out, epochs=epochs)
        seed_everything(config.seed)
        model = models.build("hrnet_tiny", num_classes=17)
        fit(
            model,
            lambda epoch: PoseBatches(samples, config, epoch),
            pose_step_loss(config.loss_weight),
            config,
            out,
            resume=resume,
        )
        return model.state_dict()

    straight = run(tmp_path / "a", 2, resume=False)
    run(tmp_path / "b", 1, resume=False)
    resumed = run(tmp_path / "b", 2, resume=True)
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def test_keypoint_names_follow_coco_flip_pairs() -> None:
    assert len(COCO_KEYPOINT_NAMES) == 17
    for left, right in models.hrnet.COCO_FLIP_PAIRS:
        assert COCO_KEYPOINT_NAMES[left].replace("left", "right") == COCO_KEYPOINT_NAMES[right]


def make_tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real synthetic split: 2 H.264 videos of 10 frames at 160x120."""
    directory = tmp_path_factory.mktemp("split")
    write_split(directory, videos=2, seed=0, frames=10, size=(160, 120))
    return directory


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real split shared by this module's tests."""
    return make_tiny_split(tmp_path_factory)


def test_config_file_validates(tiny_split: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "configs/train/pose.yaml").read_text())
    config = PoseConfig.model_validate({**data, "data": tiny_split, "val_data": tiny_split})
    assert config.input_shape == (3, 128, 96) and config.arch == "hrnet_small_v2"
    with pytest.raises(ValidationError, match="data"):
        PoseConfig.model_validate({**data, "data": tmp_path / "missing"})


def test_train_pose_writes_a_parser_ready_checkpoint(tiny_split: Path, tmp_path: Path) -> None:
    config = _config(
        tiny_split, out=tmp_path / "pose", val_data=tiny_split, epochs=1, frames_per_video=2,
        val_frames_per_video=1,
    )  # fmt: skip
    metrics = train_pose(config)
    assert 0.0 <= metrics["val_pck"] <= 1.0 and metrics["val_keypoints"] > 0
    path = tmp_path / "pose" / "pose.safetensors"
    model, report = models.build_from_checkpoint(path)
    metadata = models.read_metadata(path)
    assert report.classes == list(COCO_KEYPOINT_NAMES)
    assert json.loads(metadata["input_shape"]) == list(INPUT_SHAPE)
    assert json.loads(metadata["config"])["sigma"] == SIGMA
    heatmaps = model.eval()(torch.zeros(1, *INPUT_SHAPE))
    assert heatmaps.shape == (1, 17, 16, 16)
