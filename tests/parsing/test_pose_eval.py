"""Reading annotated keypoint sets and scoring persons and poses, on hand-made annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from parsing.pose_eval import (
    MPII_KEYPOINTS,
    AnnotatedPerson,
    PoseScore,
    PoseSetError,
    coco17_index,
    match_people,
    read_folder,
    read_sets,
)
from parsing.real_models import COCO17

AIC_NAMES = ["Right Shoulder", "Left Shoulder", "Head top", "Neck"]


def coco_file(folder: Path, annotations: list[dict], names=AIC_NAMES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "categories": [{"id": 1, "name": "person", "keypoints": names}],
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 8, "file_name": "b.jpg"}],
        "annotations": annotations,
    }
    path = folder / "test.json"
    path.write_text(json.dumps(data))
    return path


def person(box_xyxy, points: dict[str, tuple[float, float]]) -> AnnotatedPerson:
    keypoints = np.zeros((17, 3), np.float32)
    for name, xy in points.items():
        keypoints[COCO17.index(name)] = (*xy, 2)
    return AnnotatedPerson(np.array(box_xyxy, np.float32), keypoints)


def test_names_map_to_coco17_whatever_their_spelling():
    index = coco17_index(["Left Shoulder", "right_ankle", "head", "Neck", "nose"])
    assert index.tolist() == [5, 16, -1, -1, 0]


def test_read_coco_maps_keypoints_and_skips_crowds_and_people_without_coco_keypoints(tmp_path):
    keypoints = [10, 20, 2, 30, 40, 1, 50, 5, 2, 0, 0, 0]  # r_shoulder, l_shoulder, head top, -
    coco_file(
        tmp_path,
        [
            {"image_id": 7, "bbox": [5, 6, 100, 200], "keypoints": keypoints},
            {"image_id": 7, "bbox": [0, 0, 9, 9], "keypoints": keypoints, "iscrowd": 1},
            {"image_id": 8, "bbox": [0, 0, 9, 9], "keypoints": [0, 0, 0] * 2 + [5, 5, 2, 6, 6, 2]},
        ],
    )
    first, second = read_folder(tmp_path)
    assert first.path == tmp_path / "a.jpg" and second.people == ()
    (only,) = first.people
    assert only.box_xyxy.tolist() == [5, 6, 105, 206]
    labelled = {
        COCO17[i]: only.keypoints_xyv[i].tolist() for i in np.flatnonzero(only.keypoints_xyv[:, 2])
    }
    assert labelled == {"right_shoulder": [10, 20, 2], "left_shoulder": [30, 40, 1]}


def test_read_mpii_builds_the_box_from_the_joints(tmp_path):
    joints = [[100.0 + 10 * i, 200.0 + 20 * i] for i in range(16)]
    visible = [1] * 15 + [0]  # left wrist unlabelled
    entry = {
        "image": "m.jpg",
        "joints": joints,
        "joints_vis": visible,
        "center": [0, 0],
        "scale": 1,
    }
    (tmp_path / "test_mpii.json").write_text(json.dumps([entry]))
    ((only,),) = (image.people for image in read_folder(tmp_path))
    # labelled joints span x 100..240, y 200..480; padded 1.2x about the centre
    assert np.allclose(only.box_xyxy, [86, 172, 254, 508])
    ankle = only.keypoints_xyv[COCO17.index("right_ankle")]
    assert ankle.tolist() == [100, 200, 2]
    assert only.keypoints_xyv[COCO17.index("left_wrist"), 2] == 0
    assert int((only.keypoints_xyv[:, 2] > 0).sum()) == 11  # 12 limb joints map, one unlabelled
    assert MPII_KEYPOINTS[9] == "head_top" and coco17_index(MPII_KEYPOINTS)[9] == -1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({}, "expected one annotation .json, found 0", id="none"),
        pytest.param({"a.json": "[]", "b.json": "[]"}, "found 2", id="two"),
        pytest.param({"a.json": "{"}, "a.json: not valid JSON (line 1)", id="not-json"),
        pytest.param({"a.json": '{"images": []}'}, "a.json: not COCO keypoint format", id="keys"),
        pytest.param(
            {"a.json": json.dumps([{"image": "x.jpg", "joints": [[0, 0]]}])},
            "a.json: entry 0: needs image and 16 joints",
            id="mpii-short",
        ),
    ],
)
def test_bad_sets_are_one_line_errors_naming_the_file(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PoseSetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_folder(tmp_path)


def test_bad_keypoint_count_and_unknown_image_name_the_annotation(tmp_path):
    coco_file(tmp_path, [{"image_id": 7, "bbox": [0, 0, 1, 1], "keypoints": [1, 2, 2]}])
    with pytest.raises(PoseSetError, match=r"annotations\.0: expected 4 x \(x, y, v\)"):
        read_folder(tmp_path)
    coco_file(tmp_path, [{"image_id": 9, "bbox": [0, 0, 1, 1], "keypoints": [0] * 12}])
    with pytest.raises(PoseSetError, match="annotations.0: image_id 9 is not in images"):
        read_folder(tmp_path)


def test_read_sets_names_folders_and_refuses_an_empty_root(tmp_path):
    coco_file(tmp_path / "b", [])
    coco_file(tmp_path / "a", [])
    (tmp_path / "notes").mkdir()
    assert list(read_sets(tmp_path)) == ["a", "b"]
    with pytest.raises(PoseSetError, match="no folder with an annotation"):
        read_sets(tmp_path / "notes")
    with pytest.raises(PoseSetError, match="missing: not a folder"):
        read_sets(tmp_path / "missing")


def test_matching_is_one_to_one_and_maximises_the_matches():
    gt = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], np.float32)
    # p0 overlaps gt0 best (0.82) and gt1 well (0.54); p1 overlaps only gt0 (0.54): greedy on gt0
    # would take p0 and leave gt1 unmatched, the assignment matches both
    pred = np.array([[1, 0, 11, 10], [-3, 0, 7, 10]], np.float32)
    gt_index, pred_index = match_people(gt, pred)
    assert gt_index.tolist() == [0, 1] and pred_index.tolist() == [1, 0]
    # IoU exactly 0.5 is kept; below is not; no predictions, no matches
    half = np.array([[0, 0, 10, 10]], np.float32), np.array([[0, 0, 10, 5]], np.float32)
    assert match_people(*half)[0].tolist() == [0]
    assert match_people(half[0], half[1], min_iou=0.51)[0].tolist() == []
    assert match_people(gt, np.zeros((0, 4), np.float32))[0].tolist() == []


def test_pck_counts_unmatched_people_as_misses_and_reports_matched_alone():
    # box 30 x 40: diagonal 50, so a keypoint is hit within 10 px
    near = person([0, 0, 30, 40], {"nose": (10, 10), "left_hip": (20, 30)})
    missed = person([100, 0, 130, 40], {"nose": (110, 10)})
    predicted = np.zeros((1, 17, 3), np.float32)
    predicted[0, COCO17.index("nose")] = (10, 20, 0.9)  # 10 px away: a hit
    predicted[0, COCO17.index("left_hip")] = (20, 41, 0.9)  # 11 px away: a miss
    score = PoseScore()
    score.add_image([near, missed], np.array([[0, 0, 30, 40]], np.float32), predicted, 0.01)
    score.add_image([], np.zeros((0, 4)), np.zeros((0, 17, 3)), 0.03)
    assert (score.people, score.found, score.keypoints, score.hits) == (2, 1, 3, 1)
    assert score.recall == 0.5 and score.pck == pytest.approx(1 / 3) and score.pck_matched == 0.5
    total = score + score
    assert total.as_dict() | {"recall": 0} == {
        "images": 4,
        "people": 4,
        "found": 2,
        "recall": 0,
        "keypoints": 6,
        "hits": 2,
        "pck": 0.3333,
        "matched_keypoints": 4,
        "pck_matched": 0.5,
        "predicted": 2,
        "ms_per_image": 20.0,
    }
