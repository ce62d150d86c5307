"""Part boxes from keypoints: the geometry on hand-made skeletons, the mode setting, the part stage
in every mode with a real (randomly initialised) part network, and the element without one."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from pydantic import ValidationError

from parsing.frame_parser import PartDetector, Persons, discount_collapsed_pairs
from parsing.keypoint_parts import KEYPOINT, keypoint_parts
from parsing.networks import load_network
from parsing.settings import ParserSettings, PartSettings, PartType
from pipeline.config import ConfigError, validate
from pipeline.graph import parser_chain
from plugins.context import ProcessContext
from plugins.element import FrameContext
from plugins.frames import FrameRecord
from plugins.parts import PartStage
from tps.vocabulary import PART_TYPES, PARTS, part_type

FRAME_HW = (240, 320)
POSE = {
    "nose": (168, 40), "left_eye": (164, 36), "right_eye": (164, 36),
    "left_ear": (156, 38), "right_ear": (156, 38),
    "left_shoulder": (150, 70), "right_shoulder": (150, 70),
    "left_elbow": (170, 95), "right_elbow": (132, 95),
    "left_wrist": (190, 115), "right_wrist": (120, 120),
    "left_hip": (155, 130), "right_hip": (145, 130),
    "left_knee": (165, 165), "right_knee": (140, 168),
    "left_ankle": (168, 200), "right_ankle": (132, 200),
}  # fmt: skip
"""A person seen from the side, facing +x (nose ahead of eyes and ears), left limbs to the front."""
PERSON_BOX = np.array([110, 25, 200, 215], np.float32)


def _skeleton(scale: float = 1.0, missing: tuple[str, ...] = ()) -> np.ndarray:
    """(17, 3) keypoints of `POSE`, scaled, score 0.9 (0.0 for the `missing` ones)."""
    points = np.zeros((17, 3), np.float32)
    for name, (x, y) in POSE.items():
        points[KEYPOINT[name]] = (x * scale, y * scale, 0.0 if name in missing else 0.9)
    return points


def _centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


def _contains(box: np.ndarray, name: str) -> bool:
    x, y = POSE[name]
    return bool(box[0] <= x <= box[2] and box[1] <= y <= box[3])


def test_every_part_from_a_full_skeleton_sides_not_swapped():
    parts = keypoint_parts(_skeleton(), PERSON_BOX, FRAME_HW, min_score=0.3)
    assert list(parts) == list(PARTS)
    for side, other in (("left", "right"), ("right", "left")):
        arm, leg = parts[f"{side}_arm"][0], parts[f"{side}_leg"][0]
        for joint in ("shoulder", "elbow", "wrist"):
            assert _contains(arm, f"{side}_{joint}")
        for joint in ("hip", "knee", "ankle"):
            assert _contains(leg, f"{side}_{joint}")
        assert not _contains(arm, f"{other}_wrist"), f"{side} arm holds the {other} wrist"
    for name in ("nose", "left_eye", "left_ear"):
        assert _contains(parts["head"][0], name)
    assert _contains(parts["hip"][0], "left_hip") and _contains(parts["hip"][0], "right_hip")
    assert all(score == pytest.approx(0.9) for _, score in parts.values())


@pytest.mark.parametrize("side", ["left", "right"])
def test_hands_lie_beyond_the_wrists(side):
    parts = keypoint_parts(_skeleton(), PERSON_BOX, FRAME_HW, min_score=0.3)
    elbow, wrist = (np.array(POSE[f"{side}_{joint}"], np.float32) for joint in ("elbow", "wrist"))
    forearm = wrist - elbow
    hand = _centre(parts[f"{side}_hand"][0])
    assert (hand - wrist) @ forearm > 0, "the hand continues the forearm"
    assert np.linalg.norm(hand - elbow) > np.linalg.norm(forearm)
    other = np.array(POSE[f"{'right' if side == 'left' else 'left'}_wrist"], np.float32)
    assert np.linalg.norm(hand - wrist) < np.linalg.norm(hand - other)


def test_feet_point_where_the_face_looks():
    facing_right = keypoint_parts(_skeleton(), PERSON_BOX, FRAME_HW, min_score=0.3)
    mirrored = _skeleton()
    mirrored[:, 0] = 320 - mirrored[:, 0]
    facing_left = keypoint_parts(mirrored, PERSON_BOX, FRAME_HW, min_score=0.3)
    for side in ("left", "right"):
        ankle_x = POSE[f"{side}_ankle"][0]
        assert _centre(facing_right[f"{side}_foot"][0])[0] > ankle_x
        assert _centre(facing_left[f"{side}_foot"][0])[0] < 320 - ankle_x


@pytest.mark.parametrize(
    ("missing", "omitted"),
    [
        pytest.param(("left_wrist",), {"left_arm", "left_hand"}, id="wrist"),
        pytest.param(("right_knee",), {"right_leg", "right_foot"}, id="knee"),
        pytest.param(("left_hip",), {"hip", "left_leg"}, id="hip"),
        pytest.param(tuple(list(POSE)[:5]), {"head"}, id="face"),
        pytest.param(tuple(POSE), set(PARTS), id="everything"),
    ],
)
def test_parts_whose_keypoints_are_not_confident_are_omitted(missing, omitted):
    parts = keypoint_parts(_skeleton(missing=missing), PERSON_BOX, FRAME_HW, min_score=0.3)
    assert set(parts) == set(PARTS) - omitted


def test_boxes_scale_with_the_person():
    small = keypoint_parts(_skeleton(), PERSON_BOX, (480, 640), min_score=0.3)
    large = keypoint_parts(_skeleton(2.0), PERSON_BOX * 2, (480, 640), min_score=0.3)
    for name in PARTS:
        np.testing.assert_allclose(large[name][0], small[name][0] * 2, rtol=1e-5, atol=1e-3)


def test_boxes_stay_in_the_frame_and_parts_outside_are_dropped():
    points = _skeleton()
    points[:, 0] -= 175  # the person's back half leaves the frame on the left
    parts = keypoint_parts(points, PERSON_BOX - [175, 0, 175, 0], FRAME_HW, min_score=0.3)
    height, width = FRAME_HW
    for box, _ in parts.values():
        assert 0 <= box[0] < box[2] <= width - 1 and 0 <= box[1] < box[3] <= height - 1
    assert "right_hand" not in parts and "left_hand" in parts


def test_detecting_modes_need_weights_keypoints_mode_does_not():
    assert PartSettings(mode="keypoints").weights is None
    for mode in ("detector", "fallback"):
        with pytest.raises(ValueError, match=f"parts mode '{mode}' runs the part detector"):
            PartSettings(mode=mode)
    with pytest.raises(ValueError, match="mode"):
        PartSettings(mode="segmenter")


def test_parser_config_without_part_weights_is_a_config_error():
    parser = {
        "person": {"weights": "person.safetensors"},
        "pose": {"weights": "pose.safetensors"},
        "parts": {"mode": "fallback"},
    }
    with pytest.raises(ConfigError, match=r"parser\.yaml: parts.*'fallback' runs the part det"):
        validate(ParserSettings, parser, "parser.yaml")
    keypoints = {**parser, "parts": {"mode": "keypoints"}}
    chain = parser_chain(validate(ParserSettings, keypoints, "parser.yaml"), final_clips=0)
    tpsparts = next(fragment for fragment in chain if fragment.startswith("tpsparts"))
    assert "mode=keypoints" in tpsparts and "weights=" not in tpsparts


@pytest.fixture(scope="module")
def parts_network(random_weights):
    return load_network(PartSettings(weights=random_weights["parts"]))


def _persons() -> Persons:
    """Two persons on a 240x320 frame: the side-view skeleton and a shifted copy."""
    shifted = _skeleton()
    shifted[:, 0] += 100
    return Persons(
        np.stack([PERSON_BOX, PERSON_BOX + [100, 0, 100, 0]]),
        np.array([0.9, 0.8], np.float32),
        np.stack([_skeleton(), shifted]),
    )


def _frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (*FRAME_HW, 3), np.uint8)


def test_part_stage_in_every_mode(parts_network, random_weights):
    weights = random_weights["parts"]
    persons, frame = _persons(), _frame()
    derived = [
        keypoint_parts(keypoints, box, FRAME_HW, min_score=0.3)
        for box, keypoints in zip(persons.boxes_xyxy, persons.keypoints_xys, strict=True)
    ]
    detector = PartDetector(parts_network, PartSettings(weights=weights, score_threshold=0.0))
    detected = detector(frame, persons)
    assert len(detected) == 2 and all(found and set(found) <= set(PARTS) for found in detected)

    keypoints = PartDetector(None, PartSettings(mode="keypoints"))(frame, persons)
    for found, expected in zip(keypoints, derived, strict=True):
        assert set(found) == set(PARTS)
        for name, (box, score) in found.items():
            np.testing.assert_array_equal(box, expected[name][0])
            assert score == expected[name][1]

    def fallback(floor: float) -> list:
        settings = PartSettings(
            weights=weights, mode="fallback", score_threshold=0.0, fallback_score=floor
        )
        return PartDetector(parts_network, settings)(frame, persons)

    for found, kept, expected in zip(fallback(0.0), detected, derived, strict=True):
        assert set(found) == set(PARTS)
        for name, (box, _) in found.items():
            source = kept[name][0] if name in kept else expected[name][0]
            np.testing.assert_array_equal(box, source)
    for found, expected in zip(fallback(1.0), derived, strict=True):
        for name, (box, _) in found.items():
            np.testing.assert_array_equal(box, expected[name][0])

    settings = PartSettings(weights=weights, score_threshold=0.0, from_keypoints=("hand", "foot"))
    mixed = PartDetector(parts_network, settings)(frame, persons)
    for found, kept, expected in zip(mixed, detected, derived, strict=True):
        for name, (box, _) in found.items():
            taken = part_type(name) in ("hand", "foot")
            np.testing.assert_array_equal(box, (expected if taken else kept)[name][0])
        assert {n for n in found if part_type(n) in ("hand", "foot")} == set(PARTS) - {
            "head",
            "hip",
            "left_arm",
            "right_arm",
            "left_leg",
            "right_leg",
        }


def test_a_pair_on_one_spot_has_both_scores_discounted():
    box = np.array([10, 10, 20, 15], np.float32)
    parts = {
        "left_foot": (box, 0.8), "right_foot": (box + 1, 0.6),  # IoU 0.6: on one spot
        "left_hand": (box, 0.5), "right_hand": (box + 8, 0.4),  # apart
        "left_arm": (box, 0.9), "head": (box, 0.7),  # no pair
    }  # fmt: skip
    discounted = discount_collapsed_pairs(parts, 0.5)
    scores = {name: score for name, (_, score) in discounted.items()}
    assert scores == pytest.approx(
        {"left_foot": 0.4, "right_foot": 0.3, "left_hand": 0.5, "right_hand": 0.4,
         "left_arm": 0.9, "head": 0.7}
    )  # fmt: skip
    assert all(discounted[name][0] is parts[name][0] for name in parts)
    assert parts["left_foot"][1] == 0.8  # the input is left as it was


def test_the_part_stage_discounts_a_pair_on_one_spot():
    skeleton = _skeleton()
    for joint in ("elbow", "wrist"):  # the right arm and hand on the left ones
        skeleton[KEYPOINT[f"right_{joint}"]] = skeleton[KEYPOINT[f"left_{joint}"]]
    persons = Persons(PERSON_BOX[None], np.ones(1, np.float32), skeleton[None])
    frame = np.zeros((*FRAME_HW, 3), np.uint8)
    plain = PartDetector(None, PartSettings(mode="keypoints"))(frame, persons)[0]
    halved = PartDetector(None, PartSettings(mode="keypoints", collapsed_pair_factor=0.5))(
        frame, persons
    )[0]
    for name in PARTS:
        factor = 0.5 if part_type(name) in ("arm", "hand") else 1.0
        assert halved[name][1] == pytest.approx(plain[name][1] * factor), name


def test_from_keypoints_names_part_types():
    assert get_args(PartType) == PART_TYPES
    assert PartSettings(mode="keypoints", from_keypoints=["hand"]).from_keypoints == ("hand",)
    with pytest.raises(ValidationError, match="from_keypoints"):
        PartSettings(mode="keypoints", from_keypoints=["left_hand"])


def test_part_stage_refuses_a_network_its_mode_does_not_run(parts_network, random_weights):
    with pytest.raises(ValueError, match="'keypoints' runs no network"):
        PartDetector(parts_network, PartSettings(mode="keypoints"))
    with pytest.raises(ValueError, match="'detector' needs a part detector network"):
        PartDetector(None, PartSettings(weights=random_weights["parts"]))


ELEMENT_VALUES = {
    "weights": None, "engine": "torch", "device": "cpu", "precision": "fp32", "threads": 1,
    "paint": True, "paint_min_score": 0.3, "score_threshold": 0.05, "keypoint_min_score": 0.3,
    "fallback_score": 0.3, "from_keypoints": (), "refiners": (), "collapsed_pair_factor": 1.0,
}  # fmt: skip


def test_element_stage_in_keypoints_mode_loads_no_network():
    stage = PartStage.from_properties({**ELEMENT_VALUES, "mode": "keypoints"}, ProcessContext())
    stage.start()
    assert stage.detector is not None and stage.detector.network is None
    record = FrameRecord("s", 0, 0)
    record.persons = _persons()
    height, width = FRAME_HW
    stage.process(FrameContext("s", 0, 0, width, height, _frame(), record))
    humans = record.humans
    assert [set(human.parts) for human in humans] == [set(PARTS)] * 2
    stage.stop()


def test_element_stage_in_a_detecting_mode_without_weights_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^tpsparts: .*'fallback' runs the part detector[^\n]*$"):
        PartStage.from_properties({**ELEMENT_VALUES, "mode": "fallback"}, ProcessContext())
