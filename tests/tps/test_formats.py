"""Kinetics-TPS result files: round trips, strict reading with one-line errors, official limits."""

from __future__ import annotations

import json

import pytest

from tps.formats import (
    GT_PART_FILE,
    GT_VIDEO_FILE,
    MAX_HUMANS,
    MAX_PROPOSALS,
    PRED_PART_FILE,
    PRED_VIDEO_FILE,
    FormatError,
    GroundTruth,
    GtHuman,
    GtPart,
    PredHuman,
    Prediction,
    PredPart,
    read_gt,
    read_pred,
    write_gt,
    write_pred,
)

BOX = [10, 20, 30, 40]
KEY = "img_00006.json"


def gt_files(directory, parts, labels=None):
    directory.mkdir(exist_ok=True)
    (directory / GT_VIDEO_FILE).write_text(json.dumps(labels or {v: "lunge" for v in parts}))
    (directory / GT_PART_FILE).write_text(json.dumps(parts))
    return directory


def pred_files(directory, parts, labels=None):
    directory.mkdir(exist_ok=True)
    (directory / PRED_VIDEO_FILE).write_text(json.dumps(labels or {v: "lunge" for v in parts}))
    (directory / PRED_PART_FILE).write_text(json.dumps(parts))
    return directory


def pred_human(**parts):
    return {"box": BOX, "parts": parts}


def test_gt_round_trip_and_disk_shape(tmp_path):
    gt = GroundTruth(
        {"v1": "lunge"},
        {
            "v1": {
                "img_00001.json": [
                    GtHuman((0.0, 0.0, 50.5, 99.0), {"head": GtPart((1.0, 2.0, 3.0, 4.0), "none")})
                ],
                KEY: [],
            }
        },
    )
    write_gt(tmp_path / "gt", gt)
    assert read_gt(tmp_path / "gt") == gt
    on_disk = json.loads((tmp_path / "gt" / GT_PART_FILE).read_text())
    assert on_disk["v1"]["img_00001.json"]["humans"][0]["parts"]["head"] == {
        "box": [1.0, 2.0, 3.0, 4.0],
        "verb": "none",
    }


def test_pred_round_trip_and_disk_shape(tmp_path):
    part = PredPart(((1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)), ("bend", "unbend"))
    pred = Prediction(
        {"v1": "lunge"}, {"v1": {KEY: [PredHuman(tuple(map(float, BOX)), {"left_arm": part})]}}
    )
    write_pred(tmp_path, pred)
    assert read_pred(tmp_path) == pred
    on_disk = json.loads((tmp_path / PRED_PART_FILE).read_text())
    assert on_disk["v1"][KEY]["humans"][0] == {
        "box": [10.0, 20.0, 30.0, 40.0],
        "parts": {
            "left_arm": {
                "box": [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]],
                "verb": ["bend", "unbend"],
            }
        },
    }


def test_reading_accepts_official_extra_keys(tmp_path):
    human = {
        "number": 1,
        "box": BOX,
        "parts": {"head": {"number": 1, "name": "head", "box": [BOX], "verb": ["none"]}},
    }
    pred = read_pred(pred_files(tmp_path, {"v": {KEY: {"humans": [human]}}}))
    assert pred.parts["v"][KEY][0].parts["head"] == PredPart((tuple(map(float, BOX)),), ("none",))


def test_write_pred_enforces_official_limits(tmp_path):
    box = (0.0, 0.0, 1.0, 1.0)
    scored = PredPart(
        (box,) * 7, tuple(f"s{i}" for i in range(7)), (0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.5)
    )
    unscored = PredPart((box,) * 7, tuple(f"s{i}" for i in range(7)))
    humans = [
        PredHuman((float(i), 0.0, 10.0 + i, 10.0), {"head": scored, "hip": unscored}, score=s)
        for i, s in enumerate([0.5, 0.9, 0.1, 0.8, 0.7, 0.6, 0.4, 0.3, 0.95, 0.2, 0.05, 0.99])
    ]
    write_pred(tmp_path, Prediction({"v": "lunge"}, {"v": {KEY: humans}}))
    written = read_pred(tmp_path).parts["v"][KEY]
    assert len(written) == MAX_HUMANS
    # The two lowest scores (0.1 at x=2 and 0.05 at x=10) go; the rest keep their order.
    assert [human.box[0] for human in written] == [0, 1, 3, 4, 5, 6, 7, 8, 9, 11]
    assert written[0].parts["head"].verbs == ("s1", "s3", "s4", "s5", "s6")
    assert written[0].parts["hip"].verbs == ("s0", "s1", "s2", "s3", "s4")
    assert len(written[0].parts["hip"].boxes) == MAX_PROPOSALS


@pytest.mark.parametrize(
    ("boxes", "verbs", "scores", "message"),
    [
        pytest.param(((0, 0, 1, 1),), (), (), "1 boxes and 0 verbs", id="verbs"),
        pytest.param(((0, 0, 1, 1),), ("a",), (0.1, 0.2), "1 boxes and 2 scores", id="scores"),
    ],
)
def test_pred_part_checks_lengths(boxes, verbs, scores, message):
    with pytest.raises(FormatError, match=message):
        PredPart(boxes, verbs, scores)


def test_write_rejects_non_finite_numbers(tmp_path):
    pred = Prediction({"v": "lunge"}, {"v": {KEY: [PredHuman((0.0, 0.0, float("nan"), 1.0), {})]}})
    with pytest.raises(FormatError, match=f"{PRED_PART_FILE}: cannot write non-finite numbers"):
        write_pred(tmp_path, pred)


GOOD_PRED_PART = {"box": [BOX], "verb": ["bend"]}
WHERE = f"{PRED_PART_FILE}: video 'v3' frame '{KEY}'"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        pytest.param(
            {"humans": [pred_human(), pred_human(left_arm={"box": [[1, 2]], "verb": ["bend"]})]},
            f"{WHERE} human 1 part 'left_arm': box 0 must be 4 numbers [x1, y1, x2, y2], "
            "none NaN, got [1, 2]",
            id="short-box",
        ),
        pytest.param(
            {"humans": [pred_human(head={"box": [[5, 0, float("nan"), 1]], "verb": ["bend"]})]},
            "human 0 part 'head': box 0 must be 4 numbers [x1, y1, x2, y2], none NaN, "
            "got [5, 0, NaN, 1]",
            id="nan-coordinate",
        ),
        pytest.param(
            {"humans": [pred_human(head={"box": [[5, 0, "1", 1]], "verb": ["bend"]})]},
            "human 0 part 'head': box 0 must be 4 numbers",
            id="string-coordinate",
        ),
        pytest.param(
            {"humans": [pred_human(head={"box": [[0, 0, True, 1]], "verb": ["bend"]})]},
            "got [0, 0, true, 1]",
            id="boolean-coordinate",
        ),
        pytest.param(
            {"humans": [pred_human(head={"box": BOX, "verb": ["bend"]})]},
            "human 0 part 'head': expected one verb per box, got 4 boxes and 1 verbs",
            id="single-box-not-list",
        ),
        pytest.param(
            {"humans": [pred_human(head={"box": [BOX], "verb": "bend"})]},
            "human 0 part 'head': verb (a list of states) must be an array, got string",
            id="verb-not-list",
        ),
        pytest.param(
            {"humans": [pred_human(head={"box": [BOX] * 6, "verb": ["bend"] * 6})]},
            "human 0 part 'head': at most 5 proposals per part, got 6",
            id="six-proposals",
        ),
        pytest.param(
            {"humans": [pred_human()] * 11},
            f"{WHERE}: at most 10 humans per frame, got 11",
            id="eleven-humans",
        ),
        pytest.param(
            {"humans": [pred_human(nose=GOOD_PRED_PART)]},
            "human 0 part 'nose': unknown part, expected one of head, hip",
            id="unknown-part",
        ),
        pytest.param(
            {"humans": [{"parts": {}}]}, f"{WHERE} human 0: missing field 'box'", id="no-box"
        ),
        pytest.param({"people": []}, f"{WHERE}: missing field 'humans'", id="no-humans"),
        pytest.param(
            {"humans": [pred_human(head={"box": [BOX], "verb": [3]})]},
            "part 'head': verb 0 must be a non-empty string, got 3",
            id="verb-not-string",
        ),
    ],
)
def test_read_pred_names_file_video_frame_human_part(tmp_path, frame, message):
    pred_files(tmp_path, {"v3": {KEY: frame}})
    with pytest.raises(FormatError) as error:
        read_pred(tmp_path)
    text = str(error.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("parts", "labels", "message"),
    [
        pytest.param(
            {
                "v": {
                    KEY: {"humans": [{"box": BOX, "parts": {"head": {"box": [BOX], "verb": "x"}}}]}
                }
            },
            None,
            f"{GT_PART_FILE}: video 'v' frame '{KEY}' human 0 part 'head': box must be 4 numbers",
            id="gt-box-list",
        ),
        pytest.param(
            {
                "v": {
                    KEY: {"humans": [{"box": BOX, "parts": {"head": {"box": BOX, "verb": ["x"]}}}]}
                }
            },
            None,
            "part 'head': verb must be a non-empty string",
            id="gt-verb-list",
        ),
        pytest.param(
            {"v": []},
            None,
            "video 'v': video (frame -> humans) must be an object",
            id="frames-array",
        ),
        pytest.param(
            [],
            None,
            f"{GT_PART_FILE}: the file (video -> frames) must be an object",
            id="top-array",
        ),
        pytest.param(
            {"v": {}},
            {"v": 7},
            f"{GT_VIDEO_FILE}: video 'v': action must be a non-empty string, got 7",
            id="label",
        ),
        pytest.param(
            {"v": {}},
            {"v": "lunge", "w": "lunge"},
            "video 'w' is missing from gt_part_result.json",
            id="videos-differ",
        ),
    ],
)
def test_read_gt_errors(tmp_path, parts, labels, message):
    gt_files(tmp_path, parts, labels)
    with pytest.raises(FormatError) as error:
        read_gt(tmp_path)
    assert message in str(error.value)


def test_malformed_json_names_line_and_column(tmp_path):
    gt_files(tmp_path, {})
    (tmp_path / GT_PART_FILE).write_text('{\n  "v": {,}\n}')
    with pytest.raises(FormatError, match=rf"{GT_PART_FILE}: invalid JSON at line 2 column 9: "):
        read_gt(tmp_path)


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(FormatError, match=r"nowhere: no such directory$"):
        read_gt(tmp_path / "nowhere")
    (tmp_path / PRED_VIDEO_FILE).write_text("{}")
    with pytest.raises(FormatError, match=rf"{PRED_PART_FILE}: no such file$"):
        read_pred(tmp_path)
