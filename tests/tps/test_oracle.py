"""The oracle swaps: each raises the score exactly where its component was wrong, and only there."""

from __future__ import annotations

import copy
import json

import pytest

from cli.main import main
from tests.tps.test_scorer import (
    F1,
    F2,
    HEAD,
    HUMAN,
    HUMAN_A,
    HUMAN_B,
    HUMAN_P,
    HUMAN_Q,
    PERFECT_AREA,
    gt_human,
    one_video,
    pred_human,
)
from tps.formats import GroundTruth, Prediction, PredPart, write_gt, write_pred
from tps.oracle import ALL_SWAPS, ORACLE_COMPONENTS, swap, swap_all
from tps.scorer import evaluate

LOOSE_HUMAN = (0.0, 0.0, 99.0, 79.0)  # IoU 8000 / 20000 = 0.4 with HUMAN: unmatched
SLIVER_HEAD = (10.0, 10.0, 19.0, 11.0)  # IoU 20 / 100 = 0.2 with HEAD: not localised
FAR_HEAD = (50.0, 50.0, 59.0, 59.0)  # no overlap with HEAD
GT_FRAMES = {F1: [gt_human(head=(HEAD, "bend"))]}


def score(prediction, component=None) -> float:
    gt, pred = prediction
    return evaluate(gt, pred if component is None else swap(pred, gt, component)).score


def case(pred_label="lunge", human=HUMAN, boxes=(HEAD,), verbs=("bend",)):
    """One video, one frame, one GT human with a bent head; the prediction as given."""
    return one_video(GT_FRAMES, {F1: [pred_human(human, head=(boxes, verbs))]}, "lunge", pred_label)


@pytest.mark.parametrize(
    ("prediction", "fixed_by"),
    [
        pytest.param(case(pred_label="salsa_dancing"), "action", id="wrong-action"),
        pytest.param(case(human=LOOSE_HUMAN), "humans", id="human-iou-0.4"),
        pytest.param(case(boxes=(SLIVER_HEAD,)), "parts", id="part-iou-0.2"),
        pytest.param(case(verbs=("stand",)), "states", id="wrong-verb"),
    ],
)
def test_each_swap_fixes_its_error_and_no_other(prediction, fixed_by):
    assert score(prediction) == 0.0
    for component in ORACLE_COMPONENTS:
        expected = PERFECT_AREA if component == fixed_by else 0.0
        assert score(prediction, component) == expected, component


def test_action_swap_scores_the_psc():
    # Two GT parts, one right: PSC 0.5, zeroed by the wrong label until the label is swapped.
    gt, pred = one_video(
        {F1: [gt_human(head=(HEAD, "bend"), hip=(HEAD, "none"))]},
        {F1: [pred_human(head=([HEAD], ["bend"]), hip=([HEAD], ["bend"]))]},
        pred_label="salsa_dancing",
    )
    result = evaluate(gt, swap(pred, gt, "action"))
    assert result.per_video == {"v": (True, 0.5)}
    assert result.score == pytest.approx(0.5, abs=1e-12)


def test_all_four_fix_everything_no_single_swap_does():
    prediction = case("salsa_dancing", LOOSE_HUMAN, (SLIVER_HEAD,), ("stand",))
    gt, pred = prediction
    assert [score(prediction, component) for component in ORACLE_COMPONENTS] == [0.0] * 4
    assert evaluate(gt, swap_all(pred, gt)).score == PERFECT_AREA
    # Part and state swaps need the scorer's match, so in the other order they find no pair.
    assert evaluate(gt, swap_all(pred, gt, reversed(ALL_SWAPS))).score == 0.0


def test_swaps_never_mutate_the_prediction():
    # F1's human is loose (the human swap changes it), F2's is matched (the part and state swaps).
    gt, pred = one_video(
        {F1: [gt_human(head=(HEAD, "bend"))], F2: [gt_human(head=(HEAD, "bend"))]},
        {
            F1: [pred_human(LOOSE_HUMAN, head=([HEAD], ["bend"]))],
            F2: [pred_human(head=([SLIVER_HEAD, HEAD], ["stand", "stand"]))],
        },
        pred_label="salsa_dancing",
    )
    before = copy.deepcopy(pred)
    for component in ORACLE_COMPONENTS:
        assert swap(pred, gt, component) != before, component
        assert pred == before, component
    swap_all(pred, gt)
    assert pred == before


def test_human_swap_pairs_any_overlap_with_the_scorers_hungarian():
    # Greedy would pair A-P and B-Q (IoU 0.478 > 0); the scorer's Hungarian pairs A-Q and B-P.
    far = (500.0, 500.0, 599.0, 599.0)
    gt, pred = one_video(
        {F1: [gt_human(HUMAN_A), gt_human(HUMAN_B)]},
        {F1: [pred_human(HUMAN_P, head=([HEAD], ["bend"])), pred_human(HUMAN_Q), pred_human(far)]},
    )
    swapped = swap(pred, gt, "humans").parts["v"][F1]
    assert [human.box for human in swapped] == [HUMAN_B, HUMAN_A, far]
    assert swapped[0].parts == pred.parts["v"][F1][0].parts


def test_human_swap_leaves_non_overlapping_humans_unmatched():
    gt, pred = case(human=(200.0, 0.0, 299.0, 199.0))
    assert swap(pred, gt, "humans") == pred
    assert score((gt, swap(pred, gt, "humans"))) == 0.0


def test_part_swap_keeps_the_first_state_with_the_gt_box():
    # Neither proposal scores (right state far away, right box wrong state); after the swap the
    # part is one proposal: the GT box with the first state.
    gt, pred = one_video(
        {F1: [gt_human(head=(HEAD, "bend"), hip=(HEAD, "none"))]},
        {
            F1: [
                pred_human(head=([FAR_HEAD, HEAD], ["bend", "stand"]), left_arm=([HEAD], ["raise"]))
            ]
        },
    )
    assert score((gt, pred)) == 0.0
    parts = swap(pred, gt, "parts").parts["v"][F1][0].parts
    # The GT hip the prediction lacks stays absent; the left arm the GT lacks stays as predicted.
    assert parts == {
        "head": PredPart((HEAD,), ("bend",)),
        "left_arm": PredPart((HEAD,), ("raise",)),
    }
    assert evaluate(gt, swap(pred, gt, "parts")).per_video == {"v": (True, 0.5)}


def test_part_and_state_swaps_need_the_scorers_human_match():
    prediction = case(human=LOOSE_HUMAN, boxes=(SLIVER_HEAD,), verbs=("stand",))
    gt, pred = prediction
    assert swap(pred, gt, "parts") == pred
    assert swap(pred, gt, "states") == pred


def test_state_swap_only_for_localised_proposals():
    # The localised proposal takes the GT state, the sliver keeps its own: half credit.
    gt, pred = case(boxes=(HEAD, SLIVER_HEAD), verbs=("stand", "stand"))
    swapped = swap(pred, gt, "states")
    assert swapped.parts["v"][F1][0].parts["head"] == PredPart(
        (HEAD, SLIVER_HEAD), ("bend", "stand")
    )
    assert evaluate(gt, swapped).per_video == {"v": (True, 0.5)}


def test_missing_frames_and_videos_stay_missing():
    gt, pred = one_video(
        {F1: [gt_human(head=(HEAD, "bend"))], F2: [gt_human(head=(HEAD, "bend"))]},
        {F1: [pred_human(LOOSE_HUMAN, head=([HEAD], ["bend"]))]},
        pred_label="salsa_dancing",
    )
    all_swapped = swap_all(pred, gt)
    assert set(all_swapped.parts["v"]) == {F1}
    assert evaluate(gt, all_swapped).per_video == {"v": (True, 0.5)}
    gt.labels["w"] = "lunge"
    assert "w" not in swap(pred, gt, "action").labels


def test_unknown_component_is_refused():
    gt, pred = case()
    with pytest.raises(ValueError, match="oracle component 'boxes': expected one of action"):
        swap(pred, gt, "boxes")  # type: ignore[arg-type]  # the wrong name is the point


@pytest.fixture
def dirs(tmp_path):
    """Two videos: v1 right but for a loose human box, v2 with a wrong action and verb."""
    write_gt(
        tmp_path / "gt",
        GroundTruth({"v1": "lunge", "v2": "lunge"}, {"v1": GT_FRAMES, "v2": GT_FRAMES}),
    )
    pred = Prediction(
        {"v1": "lunge", "v2": "salsa_dancing"},
        {
            "v1": {F1: [pred_human(LOOSE_HUMAN, head=([HEAD], ["bend"]))]},
            "v2": {F1: [pred_human(head=([HEAD], ["stand"]))]},
        },
    )
    write_pred(tmp_path / "pred", pred)
    return tmp_path


def test_cli_table_and_json(dirs, capsys):
    out = dirs / "decomposed.json"
    argv = ["decompose", "--gt", str(dirs / "gt"), "--pred", str(dirs / "pred"), "--ci"]
    assert main([*argv, "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "|  | score | video accuracy | mean PSC | 95% interval |",
        "|---|---|---|---|---|",
    ]
    assert [line.split(" | ")[:4] for line in lines[2:]] == [
        ["| prediction", "0.0000", "0.5000", "0.0000"],
        ["| + GT action", "0.0000", "1.0000", "0.0000"],
        ["| + GT human boxes", "0.4999", "0.5000", "0.5000"],
        ["| + GT part boxes", "0.0000", "0.5000", "0.0000"],
        ["| + GT states", "0.0000", "0.5000", "0.5000"],
        ["| all four", "0.9999", "1.0000", "1.0000"],
    ]
    figures = json.loads(out.read_text())
    assert figures["videos"] == 2
    assert [row["row"] for row in figures["rows"]] == [
        line.split(" | ")[0][2:] for line in lines[2:]
    ]
    assert figures["rows"][-1]["swapped"] == list(ALL_SWAPS)
    assert figures["rows"][-1]["interval"] == [pytest.approx(0.9999)] * 2


@pytest.mark.parametrize(
    "pred",
    [pytest.param("missing", id="no-directory"), pytest.param("gt", id="no-prediction-files")],
)
def test_cli_bad_input_is_eval_one_line_error(dirs, capsys, pred):
    argv = ["--gt", str(dirs / "gt"), "--pred", str(dirs / pred)]
    assert main(["eval", *argv]) == 2
    expected = capsys.readouterr()
    assert main(["decompose", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == expected.err
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
