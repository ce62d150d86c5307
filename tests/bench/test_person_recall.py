"""Person recall: the official matching's counts on hand-made boxes, prediction folders on disk,
and the real person and pose stages on a small synthetic split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.person_recall import main, parse_split, person_recall, prediction_frames
from parsing.settings import ParserSettings
from pipeline.config import RawConfig, load_config, validate
from pipeline.settings import PipelineConfig
from tps.formats import (
    FormatError,
    GroundTruth,
    GtHuman,
    PredHuman,
    Prediction,
    write_gt,
    write_pred,
)
from tps.synth.dataset import write_split
from training.data import Split

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"
GT_BOXES = [(0.0, 0.0, 9.0, 9.0), (20.0, 0.0, 29.0, 9.0)]
PRED_BOXES = [
    (0.0, 0.0, 9.0, 9.0),  # A exactly
    (20.0, 0.0, 29.0, 4.0),  # half of B: IoU exactly 0.5, which the scorer does not match
    (100.0, 100.0, 110.0, 110.0),  # far from both
]


def test_counts_follow_the_official_matching():
    report = person_recall(
        [(np.array(GT_BOXES), np.array(PRED_BOXES)), (np.array(GT_BOXES[:1]), np.zeros((0, 4)))]
    ).as_dict()
    assert report["frames"] == 2
    assert report["gt_humans"] == 3
    assert report["recall"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["mean_matched_iou"] == 1.0
    assert report["missed"] == 2
    assert report["missed_by_best_iou"] == {"no_overlap": 1, "iou_to_0.3": 0, "iou_to_0.5": 1}
    assert report["extra_predictions"] == 2
    # A's nearest box is itself, B's is cut at half its height: y2 is 0 and -0.5 GT heights.
    assert report["median_side_offset"] == {"x1": 0.0, "y1": 0.0, "x2": 0.0, "y2": -0.25}


def test_pred_command_reads_folders_and_skips_videos_the_prediction_lacks(tmp_path, capsys):
    gt = GroundTruth(
        labels={"a": "lunge", "b": "lunge"},
        parts={
            "a": {
                "img_00001.json": [GtHuman(box, {}) for box in GT_BOXES],
                "img_00006.json": [GtHuman(GT_BOXES[0], {})],  # not predicted: a miss
                "img_00011.json": [],  # no GT humans: not scored
            },
            "b": {"img_00001.json": [GtHuman(GT_BOXES[0], {})]},  # video not predicted
        },
    )
    pred = Prediction(
        labels={"a": "lunge"},
        parts={"a": {"img_00001.json": [PredHuman(box, {}) for box in PRED_BOXES]}},
    )
    write_gt(tmp_path / "gt", gt)
    write_pred(tmp_path / "pred", pred)
    assert main(["pred", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]) == 0
    report = json.loads(capsys.readouterr().out)[str(tmp_path / "pred")]
    assert (report["frames"], report["gt_humans"], report["missed"]) == (2, 3, 2)


def test_a_prediction_without_any_gt_video_is_an_error():
    gt = GroundTruth({"a": "lunge"}, {"a": {"img_00001.json": [GtHuman(GT_BOXES[0], {})]}})
    with pytest.raises(FormatError, match="none of the ground truth's videos"):
        list(prediction_frames(gt, Prediction({"b": "lunge"}, {"b": {}})))


def test_parse_split_runs_the_shipped_stages(tmp_path):
    write_split(tmp_path, videos=1, seed=3, split="test", frames=11, size=(160, 120))
    raw = load_config(CONFIG, RawConfig, PipelineConfig).root
    settings = validate(ParserSettings, raw["parser"], str(CONFIG))
    split = Split.open(tmp_path)
    annotated = sum(bool(humans) for humans in split.annotated(split.videos[0]).values())
    before, after = parse_split(split, settings, max_videos=1)
    assert before.frames == after.frames == annotated == 3
    assert before.gt_humans == after.gt_humans > 0
    assert before.predicted == after.predicted  # refinement moves boxes, never adds or drops
    assert 0 < after.recall <= 1
