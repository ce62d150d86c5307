"""The part-label transform, the prior table and the oracle-box baselines."""

from __future__ import annotations

import pytest

from tps.formats import GroundTruth, GtHuman, GtPart, PredHuman, Prediction, PredPart
from tps.labels import (
    MISSING_STATE,
    LabelError,
    PriorTable,
    baseline,
    label_name,
    most_frequent_action,
    parse_label,
    part_labels,
    state_of_label,
)
from tps.scorer import evaluate
from tps.vocabulary import PART_TYPES, frame_key

BOX = (0.0, 0.0, 9.0, 9.0)


def human(**states: str) -> GtHuman:
    """A GT human whose parts all share one box; parts given as name=state."""
    return GtHuman((0.0, 0.0, 99.0, 99.0), {name: GtPart(BOX, s) for name, s in states.items()})


def frames(*humans_per_frame: list[GtHuman]) -> dict[str, list[GtHuman]]:
    return {frame_key(5 * i): humans for i, humans in enumerate(humans_per_frame)}


VIDEO = frames(
    [human(head="none", left_arm="bend", right_arm="unbend", left_foot="step")],
    [human(head="turn", left_arm="bend", right_leg="step_on"), human(head="none")],
    [human(head="turn", right_arm="unbend", left_hand="hold", right_hand="grab")],
)


def test_part_labels_pool_left_and_right_and_break_ties_alphabetically():
    labels = part_labels("hurling_(sport)", VIDEO)
    assert labels == {
        "head": "hurling_(sport)_Head_none",  # none 2, turn 2: tie -> alphabetical
        "hand": "hurling_(sport)_Hand_grab",  # grab 1, hold 1
        "arm": "hurling_(sport)_Arm_bend",  # bend 2 (left), unbend 2 (right)
        "hip": f"hurling_(sport)_Hip_{MISSING_STATE}",  # never annotated
        "leg": "hurling_(sport)_Leg_step_on",
        "foot": "hurling_(sport)_Foot_step",
    }
    assert list(labels) == list(PART_TYPES)


def test_most_frequent_state_wins_over_alphabet():
    video = frames([human(head="turn")], [human(head="turn")], [human(head="applaud")])
    assert part_labels("lunge", video)["head"] == "lunge_Head_turn"


@pytest.mark.parametrize(
    ("label", "parsed"),
    [
        pytest.param("belly_dancing_Head_none", ("belly_dancing", "head", "none"), id="plain"),
        pytest.param(
            "hurling_(sport)_Leg_step_on", ("hurling_(sport)", "leg", "step_on"), id="underscores"
        ),
        pytest.param("lunge_Foot_tiptoe", ("lunge", "foot", "tiptoe"), id="one-word"),
    ],
)
def test_parse_label_inverts_label_name(label, parsed):
    assert parse_label(label) == parsed
    assert label_name(*parsed) == label
    assert state_of_label(label) == parsed[2]


def test_parse_label_rejects_labels_without_part_type():
    with pytest.raises(LabelError, match="'lunge_head_none': expected <action>_<PartType>_<state>"):
        parse_label("lunge_head_none")


TRAIN = GroundTruth(
    {"a": "lunge", "b": "lunge", "c": "surfing_crowd"},
    {
        "a": frames([human(head="turn", left_leg="bend")]),
        "b": frames([human(head="none", right_leg="bend")], [human(head="none")]),
        "c": frames([human(head="raise", left_leg="unbend")], [human(head="raise")]),
    },
)


def test_prior_table_counts_parts_over_videos_of_an_action():
    prior = PriorTable.fit(TRAIN)
    assert prior.state("lunge", "head") == "none"  # none 2 (video b), turn 1
    assert prior.state("lunge", "leg") == "bend"
    assert prior.state("surfing_crowd", "head") == "raise"
    # Unseen cells fall back to the part type's state over the training set, then MISSING_STATE.
    assert prior.state("skateboarding", "head") == "none"  # none 2, raise 2 -> alphabetical
    assert prior.state("lunge", "hip") == MISSING_STATE


def test_baselines_copy_boxes_and_actions_and_guess_states():
    test = GroundTruth(
        {"t": "lunge"},
        {"t": frames([human(head="turn", left_leg="bend")], [human(head="turn"), human()], [])},
    )
    prior = baseline(TRAIN, test, "prior")
    assert prior.labels == test.labels
    first = prior.parts["t"][frame_key(0)][0]
    assert first.box == test.parts["t"][frame_key(0)][0].box
    assert {name: (p.boxes, p.verbs) for name, p in first.parts.items()} == {
        "head": ((BOX,), ("none",)),
        "left_leg": ((BOX,), ("bend",)),
    }
    # The prior gets 1 of 2 parts in frame 1 and 0 of 1 in frame 2; its own labels get all.
    assert evaluate(test, prior).per_video["t"] == (True, (0.5 + 0.0) / 2)
    assert evaluate(test, baseline(TRAIN, test, "video-labels")).per_video["t"] == (True, 1.0)


def test_baseline_on_detected_boxes_with_the_most_frequent_action():
    test = GroundTruth({"t": "surfing_crowd"}, {"t": frames([human(head="raise")], [])})
    detected = PredHuman(
        (0.0, 0.0, 99.0, 99.0), {"head": PredPart((BOX, (50.0, 50.0, 60.0, 60.0)), ("x", "y"))}
    )
    boxes = Prediction({"t": "whatever"}, {"t": {frame_key(0): [detected]}})
    guessed = baseline(TRAIN, test, "prior", boxes=boxes, action="most-frequent")
    assert most_frequent_action(TRAIN) == "lunge" == guessed.labels["t"]
    (human_0,) = guessed.parts["t"][frame_key(0)]
    assert human_0.parts["head"].boxes == detected.parts["head"].boxes
    assert human_0.parts["head"].verbs == ("none", "none")  # lunge's prior head state, per box
    assert frame_key(1) not in guessed.parts["t"]  # frames the detector missed stay missing
    oracle_action = baseline(TRAIN, test, "prior", boxes=boxes)
    assert oracle_action.labels["t"] == "surfing_crowd"
    assert oracle_action.parts["t"][frame_key(0)][0].parts["head"].verbs == ("raise", "raise")
    with pytest.raises(LabelError, match="lacks test video 't'"):
        baseline(TRAIN, test, boxes=Prediction({}))


def test_baseline_keeps_the_action_of_the_boxes_prediction():
    test = GroundTruth({"t": "surfing_crowd"}, {"t": frames([human(head="raise")])})
    detected = PredHuman((0.0, 0.0, 99.0, 99.0), {"head": PredPart((BOX,), ("raise",))})
    boxes = Prediction({"t": "lunge"}, {"t": {frame_key(0): [detected]}})
    restated = baseline(TRAIN, test, "prior", boxes=boxes, action="boxes")
    assert restated.labels["t"] == "lunge"
    assert restated.parts["t"][frame_key(0)][0].parts["head"].verbs == ("none",)  # lunge's prior
    with pytest.raises(LabelError, match="give boxes"):
        baseline(TRAIN, test, "prior", action="boxes")


def test_baseline_rejects_unknown_mode():
    with pytest.raises(LabelError, match="baseline mode 'oracle'"):
        baseline(TRAIN, TRAIN, "oracle")


def test_prior_table_round_trips_through_json(tmp_path):
    table = PriorTable(
        states={("lunge", "leg"): "step", ("lunge", "arm"): "none"}, fallback={"leg": "stand"}
    )
    table.save(tmp_path / "prior.json")
    assert PriorTable.load(tmp_path / "prior.json") == table
    with pytest.raises(LabelError, match="prior table"):
        PriorTable.load(tmp_path / "missing.json")
