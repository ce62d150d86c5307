"""Boxes with x2 < x1 or y2 < y1 are read and scored as the official rule gives, never reordered;
NaN and non-numbers are refused; `run.py eval` prints the mean PSC."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from cli.main import main
from tps.formats import (
    GT_PART_FILE,
    PRED_PART_FILE,
    PRED_VIDEO_FILE,
    FormatError,
    GroundTruth,
    GtHuman,
    GtPart,
    read_gt,
    read_pred,
    write_gt,
)
from tps.scorer import NO_OVERLAP_IOU, evaluate, inclusive_iou
from tps.vocabulary import frame_key

HUMAN = [0, 0, 99, 199]
F1 = frame_key(0)

# GT parts (inclusive pixels): head and both arms 10 x 10 = 100 pixels, hip 1 x 10 = 10 pixels.
GT_PARTS = {
    "head": ((10.0, 10.0, 19.0, 19.0), "bend"),
    "hip": ((20.0, 20.0, 20.0, 29.0), "none"),
    "left_arm": ((30.0, 30.0, 39.0, 39.0), "lift"),
    "right_arm": ((30.0, 30.0, 39.0, 39.0), "raise"),
}

# Every proposal has the right state, so only the box decides. Reversed boxes are marked "<-".
PRED_PARTS = {
    # <- x reversed by 9 pixels: intersection width min(19, 10) - max(10, 19) + 1 = -8 <= 0, so
    # IoU -1 and no credit (reordered, it would be the GT box itself: IoU 1, full credit).
    "head": {"box": [[19, 10, 10, 19]], "verb": ["bend"]},
    # <- x reversed by half a pixel: w = 20 - 20.5 + 1 = 0.5, area 0.5 * 10 = 5; intersection
    # width min(20, 20) - max(20, 20.5) + 1 = 0.5, height 10, area 5; union 10 + 5 - 5 = 10:
    # IoU 0.5 >= 0.3, full credit.
    "hip": {"box": [[20.5, 20, 20, 29]], "verb": ["none"]},
    # The first proposal is the GT box (IoU 1); the second, <- reversed in x and y, does not
    # matter; two proposals: half credit.
    "left_arm": {"box": [[30, 30, 39, 39], [39, 39, 30, 30]], "verb": ["lift", "lift"]},
    # <- reversed in x and y by 9 pixels: intersection -8 x -8 = +64 and area (-8) * (-8) = +64,
    # so inter / union alone would be 64 / (100 + 64 - 64) = 0.64; but the width is <= 0, so the
    # official "no overlap -> -1" applies first: no credit.
    "right_arm": {"box": [[39, 39, 30, 30]], "verb": ["raise"]},
}
# n = 4 GT parts; credits 0 + 1 + 1/2 + 0 = 1.5; PSC = 1.5 / 4.
EXPECTED_V1_PSC = 0.375
# v2: the predicted human box is reversed in x: IoU -1 with the GT human, nothing matches.
EXPECTED_V2_PSC = 0.0
REVERSED_BOXES = 5  # head, hip, left_arm's second, right_arm in v1; the human box in v2


def write_files(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    human = GtHuman(tuple(map(float, HUMAN)), {k: GtPart(b, v) for k, (b, v) in GT_PARTS.items()})
    write_gt(
        gt_dir,
        GroundTruth({"v1": "lunge", "v2": "lunge"}, {"v1": {F1: [human]}, "v2": {F1: [human]}}),
    )
    right = {k: {"box": [list(b)], "verb": [v]} for k, (b, v) in GT_PARTS.items()}
    parts = {
        "v1": {F1: {"humans": [{"box": HUMAN, "parts": PRED_PARTS}]}},
        "v2": {F1: {"humans": [{"box": [99, 0, 0, 199], "parts": right}]}},
    }
    pred_dir.mkdir()
    (pred_dir / PRED_VIDEO_FILE).write_text(json.dumps({"v1": "lunge", "v2": "lunge"}))
    (pred_dir / PRED_PART_FILE).write_text(json.dumps(parts))
    return gt_dir, pred_dir


def test_reversed_boxes_scored_as_the_literal_rule(tmp_path, caplog):
    gt_dir, pred_dir = write_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tps.formats"):
        pred = read_pred(pred_dir)
    # Read as given, not reordered.
    assert pred.parts["v1"][F1][0].parts["head"].boxes == ((19.0, 10.0, 10.0, 19.0),)
    assert pred.parts["v2"][F1][0].box == (99.0, 0.0, 0.0, 199.0)
    result = evaluate(read_gt(gt_dir), pred)
    assert result.per_video == {"v1": (True, EXPECTED_V1_PSC), "v2": (True, EXPECTED_V2_PSC)}
    assert result.mean_psc == pytest.approx((EXPECTED_V1_PSC + EXPECTED_V2_PSC) / 2)


def test_reversed_boxes_counted_in_one_warning(tmp_path, caplog):
    _, pred_dir = write_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tps.formats"):
        read_pred(pred_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0] == (
        f"{pred_dir / PRED_PART_FILE}: {REVERSED_BOXES} boxes with x2 < x1 or y2 < y1, "
        "scored as given"
    )


def test_ordered_boxes_warn_nothing(tmp_path, caplog):
    gt_dir, _ = write_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tps.formats"):
        read_gt(gt_dir)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_inclusive_iou_on_reversed_boxes_by_hand():
    gt = np.array([[30.0, 30.0, 39.0, 39.0], [20.0, 20.0, 20.0, 29.0], [0.0, 0.0, 9.0, 9.0]])
    pred = np.array([[39.0, 39.0, 30.0, 30.0], [20.5, 20.0, 20.0, 29.0], [5.0, 5.0, 4.25, 9.0]])
    # Row 3: w_pred = 4.25 - 5 + 1 = 0.25, h_pred = 5, area 1.25; intersection x: min(9, 4.25) -
    # max(0, 5) + 1 = 0.25, y: 9 - 5 + 1 = 5, area 1.25; union 100 + 1.25 - 1.25 = 100.
    expected = [NO_OVERLAP_IOU, 0.5, 0.0125]
    assert inclusive_iou(gt, pred).tolist() == expected
    assert inclusive_iou(gt.astype(np.float32), pred.astype(np.float32)).tolist() == pytest.approx(
        expected, rel=1e-6
    )


@pytest.mark.parametrize(
    ("coordinate", "shown"),
    [pytest.param("NaN", "NaN", id="nan"), pytest.param('"7"', '"7"', id="string")],
)
def test_nan_and_non_numbers_refused_in_one_line(tmp_path, coordinate, shown):
    _, pred_dir = write_files(tmp_path)
    path = pred_dir / PRED_PART_FILE
    text = path.read_text().replace("[20.5, 20, 20, 29]", f"[20.5, {coordinate}, 20, 29]")
    path.write_text(text)
    with pytest.raises(FormatError) as error:
        read_pred(pred_dir)
    message = str(error.value)
    assert message == (
        f"{path}: video 'v1' frame '{F1}' human 0 part 'hip': box 0 must be 4 numbers "
        f"[x1, y1, x2, y2], none NaN, got [20.5, {shown}, 20, 29]"
    )


def test_nan_in_gt_refused(tmp_path):
    gt_dir, _ = write_files(tmp_path)
    path = gt_dir / GT_PART_FILE
    data = json.loads(path.read_text())
    data["v1"][F1]["humans"][0]["box"][2] = float("nan")
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=r"video 'v1' frame 'img_00001.json' human 0: box must"):
        read_gt(gt_dir)


def test_eval_prints_mean_psc(tmp_path, capsys):
    gt_dir, pred_dir = write_files(tmp_path)
    assert main(["eval", "--gt", str(gt_dir), "--pred", str(pred_dir)]) == 0
    # Area: v1 is correct with PSC 0.375 (counted for thresholds 1..3750), v2 has PSC 0.
    assert capsys.readouterr().out == "score 0.1875  video accuracy 1.0000  mean PSC 0.1875\n"
