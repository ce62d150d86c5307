"""``run.py eval`` and ``run.py baseline`` in-process: output, JSON, one-line errors, exit codes."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from tps.formats import (
    PRED_PART_FILE,
    GroundTruth,
    GtHuman,
    GtPart,
    PredHuman,
    Prediction,
    PredPart,
    write_gt,
    write_pred,
)
from tps.vocabulary import frame_key

BOX = (0.0, 0.0, 99.0, 199.0)
HEAD = (10.0, 10.0, 19.0, 19.0)


def ground_truth() -> GroundTruth:
    frames = {
        frame_key(0): [GtHuman(BOX, {"head": GtPart(HEAD, "bend"), "hip": GtPart(HEAD, "none")})],
        frame_key(5): [GtHuman(BOX, {"head": GtPart(HEAD, "bend")})],
    }
    return GroundTruth({"v1": "lunge", "v2": "lunge"}, {"v1": frames, "v2": frames})


def prediction(videos=("v1", "v2")) -> Prediction:
    frames = {
        frame_key(0): [
            PredHuman(
                BOX, {"head": PredPart((HEAD,), ("bend",)), "hip": PredPart((HEAD,), ("bend",))}
            )
        ]
    }
    return Prediction({v: "lunge" for v in videos}, {v: frames for v in videos})


@pytest.fixture
def dirs(tmp_path):
    write_gt(tmp_path / "gt", ground_truth())
    write_pred(tmp_path / "pred", prediction())
    return tmp_path


def test_eval_prints_score_and_accuracy(dirs, capsys):
    assert main(["eval", "--gt", str(dirs / "gt"), "--pred", str(dirs / "pred")]) == 0
    # PSC per video: frame 1 gets 1 of 2 parts, frame 2 is missing: (0.5 + 0) / 2.
    assert capsys.readouterr().out == "score 0.2500  video accuracy 1.0000  mean PSC 0.2500\n"
    assert main(["eval", "--gt", str(dirs / "gt"), "--pred", str(dirs / "pred"), "--ci"]) == 0
    assert capsys.readouterr().out.endswith("95% interval 0.2500-0.2500 (2 videos)\n")


def test_eval_json(dirs, capsys):
    argv = [
        "eval",
        "--gt",
        str(dirs / "gt"),
        "--pred",
        str(dirs / "pred"),
        "--json",
        "--part-iou",
        "0.9",
    ]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"score", "video_accuracy", "mean_psc", "per_video"}
    assert result["per_video"] == {
        "v1": {"correct": True, "psc": 0.25},
        "v2": {"correct": True, "psc": 0.25},
    }
    assert result["score"] == pytest.approx(0.25, abs=1e-12)


def test_baseline_writes_a_prediction_that_eval_reads(dirs, capsys):
    out = dirs / "baseline"
    argv = ["baseline", "--train", str(dirs / "gt"), "--test", str(dirs / "gt"), "--out", str(out)]
    assert main([*argv, "--mode", "video-labels"]) == 0
    assert str(out / PRED_PART_FILE) in capsys.readouterr().out
    assert main(["eval", "--gt", str(dirs / "gt"), "--pred", str(out)]) == 0
    assert capsys.readouterr().out == "score 0.9999  video accuracy 1.0000  mean PSC 1.0000\n"


def break_json(tmp):
    (tmp / "pred" / PRED_PART_FILE).write_text('{"v1": {"img_00001.json": {"humans": [}}}')
    return tmp / "pred", "pred_part_result.json: invalid JSON at line 1 column 39"


def drop_video(tmp):
    write_pred(tmp / "short", prediction(videos=("v1",)))
    return tmp / "short", "prediction has no video 'v2'"


def eleven_humans(tmp):
    data = json.loads((tmp / "pred" / PRED_PART_FILE).read_text())
    data["v2"][frame_key(0)]["humans"] *= 11
    (tmp / "pred" / PRED_PART_FILE).write_text(json.dumps(data))
    return tmp / "pred", "video 'v2' frame 'img_00001.json': at most 10 humans per frame, got 11"


def no_directory(tmp):
    return tmp / "missing", "missing: no such directory"


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(break_json, id="malformed-json"),
        pytest.param(drop_video, id="missing-video"),
        pytest.param(eleven_humans, id="eleven-humans"),
        pytest.param(no_directory, id="no-directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(dirs, capsys, spoil):
    pred_dir, message = spoil(dirs)
    assert main(["eval", "--gt", str(dirs / "gt"), "--pred", str(pred_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
