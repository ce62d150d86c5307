"""The person and part detector recipes: input geometry, targets, AP50, training on a tiny split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import models
from cli.main import main
from models.detection import letterbox
from parsing.crops import crop_points_to_frame
from parsing.frame_parser import PersonDetector
from parsing.networks import load_network
from parsing.settings import PersonSettings
from tps.formats import GtHuman, GtPart
from tps.synth.dataset import write_split
from tps.vocabulary import PARTS
from training.data import Split
from training.detection import (
    EVAL_MAX_DETECTIONS,
    EVAL_NMS_IOU,
    EVAL_SCORE_THR,
    detect,
    detector_step_loss,
    load_frame_samples,
)
from training.metrics import average_precision
from training.parts import (
    PartBatches,
    PartsConfig,
    evaluate_parts,
    part_samples,
    part_targets,
    person_samples,
)
from training.person import PersonBatches, PersonConfig, evaluate_person, place_image, train_person

FRAME_HW = (120, 160)
SMALL_PERSON_INPUT = (3, 64, 96)
SMALL_PART_INPUT = (3, 64, 64)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 16-frame 160x120 videos (4 annotated frames each) written by the synth generator."""
    directory = tmp_path_factory.mktemp("split")
    write_split(directory, videos=3, seed=5, frames=16, size=(FRAME_HW[1], FRAME_HW[0]))
    return directory


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)


def test_place_image_defaults_equal_the_inference_letterbox() -> None:
    frame = _frame()
    boxes = np.array([[10, 20, 59, 99]], np.float32)
    placed, placed_boxes = place_image(frame, boxes, (256, 320))
    expected, meta = letterbox(frame, (256, 320))
    torch.testing.assert_close(placed, expected)
    scale_x, scale_y = meta.scale_xy
    np.testing.assert_allclose(placed_boxes, boxes * [scale_x, scale_y, scale_x, scale_y])


def test_place_image_flip_mirrors_pixels_and_inclusive_boxes() -> None:
    frame = _frame()
    boxes = np.array([[0, 5, 9, 15]], np.float32)  # columns 0..9
    placed, placed_boxes = place_image(frame, boxes, FRAME_HW, flip=True)
    unflipped, _ = place_image(frame, boxes, FRAME_HW)
    torch.testing.assert_close(placed, unflipped.flip(-1))
    np.testing.assert_allclose(placed_boxes, [[150, 5, 159, 15]])  # columns 150..159


def test_place_image_zoom_and_offset_move_and_clip_boxes() -> None:
    frame = _frame()
    boxes = np.array([[0, 0, 40, 40], [100, 60, 150, 110]], np.float32)
    _, placed_boxes = place_image(frame, boxes, FRAME_HW, zoom=2.0, offset_xy=(-60, -30))
    # scale 2: the first box maps to (-60, -30, 20, 50) -> clipped; the second to (140, 90, ...)
    np.testing.assert_allclose(placed_boxes[0], [0, 0, 20, 50])
    np.testing.assert_allclose(placed_boxes[1], [140, 90, 160, 120])
    _, gone = place_image(frame, boxes[:1], FRAME_HW, zoom=0.5, offset_xy=(200, 0))
    assert gone.shape == (0, 4)


def test_training_detects_exactly_as_the_frame_parser(tmp_path: Path) -> None:
    """Validation's boxes are the parser's: same checkpoint, same frames, same thresholds."""
    torch.manual_seed(0)
    model = models.build("yolof_tiny", num_classes=1)
    with torch.no_grad():  # spread the scores away from the prior so boxes survive the threshold
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    weights = models.save_checkpoint(
        model, tmp_path / "person.safetensors", "yolof_tiny", ["person"],
        {"input_shape": list(SMALL_PERSON_INPUT)},
    )  # fmt: skip
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
              for height, width in ((120, 160), (90, 200), (150, 100))]  # fmt: skip
    settings = PersonSettings(weights=weights, score_threshold=EVAL_SCORE_THR,
                              nms_iou=EVAL_NMS_IOU, max_persons=EVAL_MAX_DETECTIONS)  # fmt: skip
    parsed = PersonDetector(load_network(settings), settings)(frames)
    found = detect(model.eval(), frames, SMALL_PERSON_INPUT[1:])
    assert sum(len(boxes) for boxes, _, _ in found) > 0
    for (boxes, scores, labels), detections in zip(found, parsed, strict=True):
        np.testing.assert_array_equal(boxes, detections.boxes_xyxy.numpy())
        np.testing.assert_array_equal(scores, detections.scores.numpy())
        np.testing.assert_array_equal(labels, detections.labels.numpy())


def test_part_targets_invert_the_parsers_mapping_back_to_the_frame() -> None:
    human = GtHuman(
        box=(40, 10, 90, 110),
        parts={"head": GtPart((55, 10, 70, 28), "none"), "left_foot": GtPart((60, 100, 72, 109),
                                                                               "step")},
    )  # fmt: skip
    crop_box = np.array([30.0, 0.0, 100.0, 120.0], np.float32)
    boxes, labels = part_targets(human, crop_box, (96, 96))
    assert labels.tolist() == [PARTS.index("head"), PARTS.index("left_foot")]
    back = crop_points_to_frame(boxes.reshape(-1, 2, 2), crop_box, (96, 96)).reshape(-1, 4)
    np.testing.assert_allclose(back, [[55, 10, 70, 28], [60, 100, 72, 109]], atol=1e-3)


@pytest.mark.parametrize(
    "detections, ground_truths, expected",
    [
        pytest.param([([[0, 0, 10, 10]], [0.9])], [[[0, 0, 10, 10]]], 1.0, id="perfect"),
        pytest.param(
            [([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8])], [[[0, 0, 10, 10]]], 1.0,
            id="false-positive-ranked-last",
        ),
        pytest.param(
            [([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.9])], [[[0, 0, 10, 10]]], 0.5,
            id="false-positive-ranked-first",
        ),
        pytest.param(
            [([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.95])], [[[0, 0, 10, 10], [20, 0, 30, 10]]],
            0.5, id="duplicate-is-false-and-second-gt-missed",
        ),
        pytest.param(
            [([[0, 0, 10, 10]], [0.9]), ([], [])], [[[0, 0, 10, 10]], [[5, 5, 9, 9]]], 0.5,
            id="two-images-one-missed",
        ),
        pytest.param([([[0, 0, 10, 10]], [0.9])], [[[0, 0, 10, 14]]], 1.0, id="iou-0.71"),
        pytest.param([([[0, 0, 10, 10]], [0.9])], [[[0, 0, 10, 21]]], 0.0, id="iou-0.48"),
    ],
)  # fmt: skip
def test_average_precision_known_values(detections, ground_truths, expected) -> None:
    as_arrays = [(np.array(b, np.float32).reshape(-1, 4), np.array(s)) for b, s in detections]
    truths = [np.array(g, np.float32).reshape(-1, 4) for g in ground_truths]
    assert average_precision(as_arrays, truths) == pytest.approx(expected)


def test_average_precision_without_ground_truth_is_nan() -> None:
    assert math.isnan(average_precision([(np.zeros((1, 4)), np.ones(1))], [np.zeros((0, 4))]))


def _steps_reduce_loss(model: torch.nn.Module, batch: tuple, steps: int = 2) -> tuple:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(steps + 1):
        loss = sum(detector_step_loss(model, batch).values())
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses[0], losses[-1]


def _config(model: type, split: Path, tmp_path: Path, **changes: object):
    fields = {"data": split, "out": tmp_path / "out", "epochs": 1, "batch_size": 2, "lr": 0.01,
              "frames_per_video": 1}  # fmt: skip
    return model(**{**fields, **changes})


def test_person_batch_and_optimisation_steps_reduce_the_loss(tiny_split: Path, tmp_path) -> None:
    config = _config(PersonConfig, tiny_split, tmp_path, input_shape=SMALL_PERSON_INPUT)
    samples = load_frame_samples(Split.open(tiny_split), config.frames_per_video)
    batches = PersonBatches(samples, config, epoch=0)
    images, boxes, labels = next(iter(batches))
    assert images.shape == (2, *SMALL_PERSON_INPUT)
    assert all(
        len(b) == len(lab) and (lab == 0).all() for b, lab in zip(boxes, labels, strict=True)
    )
    again = next(iter(PersonBatches(samples, config, epoch=0)))
    torch.testing.assert_close(again[0], images)  # an epoch's batches depend on the epoch only
    torch.manual_seed(0)
    first, last = _steps_reduce_loss(
        models.build("yolof_tiny", num_classes=1), (images, boxes, labels)
    )
    assert last < first


def test_part_batch_targets_lie_in_the_crop_and_training_reduces_loss(
    tiny_split: Path, tmp_path: Path
) -> None:
    config = _config(PartsConfig, tiny_split, tmp_path, input_shape=SMALL_PART_INPUT)
    samples = load_frame_samples(Split.open(tiny_split), config.frames_per_video)
    persons = person_samples(samples)
    assert persons
    crops, boxes, labels = next(iter(PartBatches(samples, persons, config, epoch=0)))
    assert crops.shape == (2, *SMALL_PART_INPUT)
    for part_boxes, part_labels in zip(boxes, labels, strict=True):
        assert len(part_boxes) == len(part_labels) > 0
        assert (part_boxes[:, :2] >= 0).all() and (part_boxes[:, 2:] <= SMALL_PART_INPUT[1]).all()
        assert ((part_labels >= 0) & (part_labels < len(PARTS))).all()
    torch.manual_seed(0)
    first, last = _steps_reduce_loss(models.build("yolof_tiny_dc5", num_classes=len(PARTS)),
                                     (crops, boxes, labels))  # fmt: skip
    assert last < first


def test_train_person_writes_weights_the_parser_can_load(tiny_split: Path, tmp_path: Path) -> None:
    config = _config(PersonConfig, tiny_split, tmp_path, input_shape=SMALL_PERSON_INPUT,
                     val_data=tiny_split, max_iters_per_epoch=1)  # fmt: skip
    metrics = train_person(config)
    weights = config.out / "person.safetensors"
    model, report = models.build_from_checkpoint(weights)
    metadata = models.read_metadata(weights)
    assert report.classes == ["person"]
    assert json.loads(metadata["input_shape"]) == list(SMALL_PERSON_INPUT)
    assert json.loads(metadata["metrics"])["iterations"] == 1
    assert 0.0 <= metrics["val_ap50"] <= 1.0
    evaluated = evaluate_person(weights, tiny_split, frames_per_video=1)
    assert evaluated["ap50"] == pytest.approx(metrics["val_ap50"])


def test_train_parts_command_and_evaluation(tiny_split: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "parts.yaml"
    settings = {"data": "unused", "out": "unused", "epochs": 1, "batch_size": 2, "lr": 0.01,
                "frames_per_video": 1, "max_iters_per_epoch": 1,
                "input_shape": list(SMALL_PART_INPUT), "paint": False}  # fmt: skip
    config_file.write_text(yaml.safe_dump(settings))
    out = tmp_path / "parts_run"
    code = main(["train", "parts", "-c", str(config_file), "--data", str(tiny_split),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    result = evaluate_parts(out / "parts.safetensors", tiny_split, frames_per_video=1)
    assert set(result["per_part"]) == set(PARTS)
    assert 0.0 <= result["ap50"] <= 1.0
    assert json.loads(models.read_metadata(out / "parts.safetensors")["config"])["paint"] is False


def test_train_command_rejects_a_missing_split(tmp_path: Path, capsys) -> None:
    config_file = tmp_path / "person.yaml"
    config_file.write_text(yaml.safe_dump({"data": str(tmp_path / "absent"), "out": "o",
                                           "epochs": 1, "batch_size": 1, "lr": 0.01}))  # fmt: skip
    assert main(["train", "person", "-c", str(config_file)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {config_file}: data:") and "absent" in error


def test_pose_keypoints_come_from_a_pose_checkpoint_run_like_the_parser(
    tiny_split: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    pose = models.build("hrnet_tiny")
    pose_weights = models.save_checkpoint(
        pose, tmp_path / "pose.safetensors", "hrnet_tiny", [f"k{i}" for i in range(17)],
        {"input_shape": [3, 64, 64]},
    )  # fmt: skip
    config = _config(PartsConfig, tiny_split, tmp_path, keypoints="pose", pose_weights=pose_weights)
    samples, persons = part_samples(Split.open(tiny_split), 1, 1, config.pose_weights)
    humans = sum(len(frame_humans) for frame_humans in samples.humans)
    assert humans > 0 and len(persons) == sum(
        1 for frame_humans in samples.humans for human in frame_humans if human.parts
    )
    for frame_keypoints in samples.keypoints:
        for keypoints in frame_keypoints:
            assert keypoints.shape == (17, 3) and np.isfinite(keypoints).all()
    with pytest.raises(ValueError, match="pose needs pose_weights"):
        _config(PartsConfig, tiny_split, tmp_path, keypoints="pose")
