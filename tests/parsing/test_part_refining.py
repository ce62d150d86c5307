"""The part refiner's geometry (patches, edges, inclusive boxes), its stage with a real network
whose weights fix its answer, and the part stage loading it from the settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from parsing.frame_parser import PartDetector, Persons
from parsing.inputs import frame_tensor
from parsing.keypoint_parts import keypoint_parts
from parsing.networks import load_network
from parsing.part_refining import (
    PATCH_SCALE_KEY,
    PartRefinerStage,
    at_least_one_pixel,
    box_centres,
    boxes_in_patches,
    cut_patches,
    patch_boxes,
    patch_edges,
    patches_to_boxes,
)
from parsing.settings import NetworkSettings, PartSettings
from plugins.context import ProcessContext
from plugins.parts import PartStage
from tests.parsing.test_keypoint_parts import ELEMENT_VALUES, FRAME_HW, PERSON_BOX, _skeleton
from tps.vocabulary import PARTS, part_type

PATCH_SCALE = 0.4
SIDE_IN_PATCH = 0.1
"""The fixed network answers a square of this many patch sides, centred on the patch."""


def test_boxes_go_into_patches_and_back_exactly():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 100, (20, 2)).repeat(2, axis=1)[:, [0, 2, 1, 3]]
    boxes[:, 2:] += rng.uniform(0, 12, (20, 2))
    patches = patch_boxes(box_centres(boxes) + rng.normal(0, 3, (20, 2)), np.full(20, 80), 0.4)
    np.testing.assert_allclose(patches[:, 2] - patches[:, 0], 32, rtol=1e-6)
    back = patches_to_boxes(boxes_in_patches(boxes, patches), patches)
    np.testing.assert_allclose(back, boxes, atol=1e-4)


def test_an_inclusive_box_centred_in_its_patch():
    # an 8-pixel box (inclusive 10..17) spans 8 of the 32 pixels of a patch centred on it
    box = np.array([[10, 20, 17, 27]], np.float32)
    patch = patch_boxes(box_centres(box), np.array([80.0]), 0.4)
    np.testing.assert_allclose(boxes_in_patches(box, patch), [[0.375, 0.375, 0.625, 0.625]])


def test_patch_edges_decode_the_centre_and_log_sizes():
    outputs = torch.tensor([[0.5, 0.4, math.log(0.25), math.log(0.5)]])
    np.testing.assert_allclose(patch_edges(outputs).numpy(), [[0.375, 0.15, 0.625, 0.65]])


def test_a_size_under_a_pixel_becomes_one_pixel_about_its_centre():
    # a refiner's answer 0.05 pixels wide is an inclusive box with x2 < x1; widths >= 1 stay
    boxes = np.array([[175.52, 180.67, 175.47, 182.07], [10, 20, 17, 27]], np.float32)
    fixed = at_least_one_pixel(boxes)
    np.testing.assert_allclose(fixed[0], [175.495, 180.67, 175.495, 182.07], atol=1e-4)
    np.testing.assert_array_equal(fixed[1], boxes[1])


def test_a_patch_samples_the_frame_around_its_centre():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[30:34, 50:54] = 255  # a 4x4 bright square centred at (51.5, 31.5)
    patch = patch_boxes(np.array([[51.5, 31.5]]), np.array([40.0]), 0.4)  # 16 pixels, 1:1
    crop = cut_patches(frame_tensor(frame), patch, 16)[0, 0]
    bright = np.argwhere(crop > crop.mean())
    np.testing.assert_allclose(bright.mean(axis=0), [7.5, 7.5])
    assert len(bright) == 16


def _fixed_refiner(path: Path, side_in_patch: float = SIDE_IN_PATCH) -> Path:
    """A real refiner whose weights answer a square of `side_in_patch` centred on every patch:
    flat centre maps (the soft arg-max gives the middle) and a size layer that is only a bias."""
    model = models.build("part_refiner_tiny", num_classes=2)
    with torch.no_grad():
        model.centre.weight.zero_()
        model.centre.bias.zero_()
        model.size.weight.zero_()
        model.size.bias.fill_(math.log(side_in_patch))
    models.save_checkpoint(
        model,
        path,
        "part_refiner_tiny",
        ["hand", "foot"],
        {"input_shape": [3, 32, 32], PATCH_SCALE_KEY: PATCH_SCALE},
    )
    return path


@pytest.fixture(scope="module")
def refiner_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fixed_refiner(tmp_path_factory.mktemp("refiner") / "refiner.safetensors")


def _persons() -> Persons:
    return Persons(PERSON_BOX[None], np.ones(1, np.float32), _skeleton()[None])


def _frame() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (*FRAME_HW, 3), np.uint8)


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_the_stage_replaces_hands_and_feet_and_keeps_scores(refiner_weights, engine, tmp_path):
    network = load_network(NetworkSettings(weights=refiner_weights, engine=engine), tmp_path)
    stage = PartRefinerStage(network)
    assert stage.types == ["hand", "foot"] and stage.scale == PATCH_SCALE and stage.size == 32
    found = [keypoint_parts(_skeleton(), PERSON_BOX, FRAME_HW, min_score=0.3)]
    refined = stage(frame_tensor(_frame()), PERSON_BOX[None], found)
    side = SIDE_IN_PATCH * PATCH_SCALE * float(PERSON_BOX[3] - PERSON_BOX[1])
    assert set(refined[0]) == set(found[0])
    for name, (box, score) in refined[0].items():
        assert score == found[0][name][1]
        if part_type(name) in ("hand", "foot"):
            np.testing.assert_allclose(box_centres(box), box_centres(found[0][name][0]), atol=1e-3)
            np.testing.assert_allclose(box[2:] - box[:2] + 1, [side, side], rtol=1e-4)
        else:
            assert box is found[0][name][0]


def test_the_part_stage_loads_and_runs_its_refiner(refiner_weights):
    settings = PartSettings(mode="keypoints", refiners=[NetworkSettings(weights=refiner_weights)])
    stage = PartDetector.load(settings)
    assert len(stage.refiners) == 1
    plain = PartDetector(None, PartSettings(mode="keypoints"))
    frame, persons = _frame(), _persons()
    refined, unrefined = stage(frame, persons)[0], plain(frame, persons)[0]
    assert set(refined) == set(unrefined) == set(PARTS)
    changed = {name for name in PARTS if not np.array_equal(refined[name][0], unrefined[name][0])}
    assert changed == {name for name in PARTS if part_type(name) in ("hand", "foot")}


def test_each_refiner_runs_on_the_last_ones_boxes(refiner_weights, tmp_path):
    fine = _fixed_refiner(tmp_path / "fine.safetensors", side_in_patch=0.05)
    coarse = NetworkSettings(weights=refiner_weights)
    settings = PartSettings(mode="keypoints", refiners=[coarse, NetworkSettings(weights=fine)])
    stage = PartDetector.load(settings)
    first = PartDetector.load(settings.model_copy(update={"refiners": (coarse,)}))
    frame, persons = _frame(), _persons()
    twice, once = stage(frame, persons)[0], first(frame, persons)[0]
    side = 0.05 * PATCH_SCALE * float(PERSON_BOX[3] - PERSON_BOX[1])
    for name in PARTS:
        if part_type(name) in ("hand", "foot"):  # the fine network's size, at the first's centre
            np.testing.assert_allclose(
                twice[name][0][2:] - twice[name][0][:2] + 1, [side, side], rtol=1e-4
            )
            np.testing.assert_allclose(
                box_centres(twice[name][0]), box_centres(once[name][0]), atol=1e-3
            )
        else:
            np.testing.assert_array_equal(twice[name][0], once[name][0])


def test_the_parts_element_takes_its_refiners_as_json(refiner_weights):
    refiners = json.dumps([{"weights": str(refiner_weights)}] * 2)
    values = {**ELEMENT_VALUES, "mode": "keypoints", "refiners": refiners}
    stage = PartStage.from_properties(values, ProcessContext())
    stage.start()
    assert stage.detector is not None and len(stage.detector.refiners) == 2
    assert stage.detector.refiners[0].types == ["hand", "foot"]
