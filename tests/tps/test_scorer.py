"""The exact Kinetics-TPS scorer: one hand-computed case per quirk, a scalar reference, the area."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from tps.formats import (
    FormatError,
    GroundTruth,
    GtHuman,
    GtPart,
    PredHuman,
    Prediction,
    PredPart,
    read_pred,
    write_pred,
)
from tps.scorer import (
    HUMAN_IOU,
    PART_IOU,
    THRESHOLD_STEPS,
    ScoreResult,
    conditioned_area,
    evaluate,
    inclusive_iou,
    video_psc,
)
from tps.vocabulary import PARTS, frame_key

F1, F2 = frame_key(0), frame_key(5)
HUMAN = (0.0, 0.0, 99.0, 199.0)
HEAD = (10.0, 10.0, 19.0, 19.0)  # 10 x 10 inclusive pixels
PERFECT_AREA = 0.9998999999999062  # the official loop for one correct video with PSC 1


def gt_human(box=HUMAN, **parts: tuple) -> GtHuman:
    """A GT human; parts given as name=(box, verb)."""
    return GtHuman(box, {name: GtPart(b, v) for name, (b, v) in parts.items()})


def pred_human(box=HUMAN, **parts: tuple) -> PredHuman:
    """A predicted human; parts given as name=((box, ...), (verb, ...))."""
    return PredHuman(box, {name: PredPart(tuple(b), tuple(v)) for name, (b, v) in parts.items()})


def one_video(gt_frames, pred_frames, gt_label="lunge", pred_label="lunge"):
    return GroundTruth({"v": gt_label}, {"v": gt_frames}), Prediction(
        {"v": pred_label}, {"v": pred_frames}
    )


def official_loop(correct, psc) -> float:
    """The official area, literally: 9999 thresholds, each a pass over the videos."""
    area = 0
    for step in range(1, THRESHOLD_STEPS):
        threshold = step / THRESHOLD_STEPS
        hits = sum(1 for c, p in zip(correct, psc, strict=True) if c and p >= threshold)
        area += 1.0 / THRESHOLD_STEPS * (hits / len(correct))
    return area


# Hungarian vs greedy: IoU(A,P)=0.722 is the largest, so greedy takes A-P and leaves B with
# Q (0.478 <= 0.5); Hungarian minimises total cost with A-Q (0.714) and B-P (0.577).
HUMAN_A, HUMAN_B = (160.0, 0.0, 289.0, 9.0), (70.0, 0.0, 299.0, 9.0)
HUMAN_P, HUMAN_Q = (150.0, 0.0, 329.0, 9.0), (190.0, 0.0, 299.0, 9.0)

# Slim predicted humans inside (0, 0, 99, 99): widths 1 and 1 + 2**-23 in float32.
SLIM_X, SLIM_Y = (0.0, 0.0, 0.0, 99.0), (0.0, 0.0, 1.2e-7, 99.0)

QUIRKS = [
    pytest.param(
        # IoU 20/60 = 0.333 with inclusive pixels (x2 - x1 + 1); 9/51 = 0.176 without.
        {F1: [gt_human(head=((0.0, 0.0, 3.0, 9.0), "bend"))]},
        {F1: [pred_human(head=([(2.0, 0.0, 5.0, 9.0)], ["bend"]))]},
        {},
        1.0,
        id="inclusive-iou",
    ),
    pytest.param(
        # Touching boxes do not overlap: IoU -1, so even a part threshold of 0 is not met.
        {F1: [gt_human(head=((0.0, 0.0, 3.0, 9.0), "bend"))]},
        {F1: [pred_human(head=([(4.0, 0.0, 7.0, 9.0)], ["bend"]))]},
        {"part_iou": 0.0},
        0.0,
        id="no-overlap-is-minus-one",
    ),
    pytest.param(
        {F1: [gt_human(head=((0.0, 0.0, 3.0, 9.0), "bend"))]},
        {F1: [pred_human(head=([(4.0, 0.0, 7.0, 9.0)], ["bend"]))]},
        {"part_iou": -1.0},
        1.0,
        id="no-overlap-meets-threshold-minus-one",
    ),
    pytest.param(
        # Human IoU 50 / 100 = 0.5 exactly: not > 0.5, no match.
        {F1: [gt_human((0.0, 0.0, 9.0, 9.0), head=(HEAD, "bend"))]},
        {F1: [pred_human((0.0, 0.0, 9.0, 4.0), head=([HEAD], ["bend"]))]},
        {},
        0.0,
        id="human-iou-exactly-half-rejected",
    ),
    pytest.param(
        # 5000.00001 / 10000 > 0.5 in float64, but y2 = 49.0000001 is 49.0 in float32: IoU 0.5.
        {F1: [gt_human((0.0, 0.0, 99.0, 99.0), head=(HEAD, "bend"))]},
        {F1: [pred_human((0.0, 0.0, 99.0, 49.0000001), head=([HEAD], ["bend"]))]},
        {},
        0.0,
        id="human-iou-float32-rounds-to-half",
    ),
    pytest.param(
        # IoUs 0.01 (X) and 0.0100000012 (Y): 1 - IoU ties in float32 but not in float64. One GT
        # and two predictions pad the matrix with float64 zeros, so Y (right verb) wins.
        {F1: [gt_human((0.0, 0.0, 99.0, 99.0), head=(HEAD, "bend"))]},
        {
            F1: [
                pred_human(SLIM_X, head=([HEAD], ["none"])),
                pred_human(SLIM_Y, head=([HEAD], ["bend"])),
            ]
        },
        {"human_iou": 0.001},
        1.0,
        id="padding-makes-costs-float64",
    ),
    pytest.param(
        # Two GT and two predictions need no padding: float32 costs tie and the first (X) wins.
        {
            F1: [
                gt_human((0.0, 0.0, 99.0, 99.0), head=(HEAD, "bend")),
                gt_human((1000.0, 0.0, 1099.0, 99.0), head=(HEAD, "bend")),
            ]
        },
        {
            F1: [
                pred_human(SLIM_X, head=([HEAD], ["none"])),
                pred_human(SLIM_Y, head=([HEAD], ["bend"])),
            ]
        },
        {"human_iou": 0.001},
        0.0,
        id="square-costs-stay-float32",
    ),
    pytest.param(
        # Part IoU 30 / 100 = 0.3 exactly: >= 0.3 counts.
        {F1: [gt_human(head=((0.0, 0.0, 9.0, 9.0), "bend"))]},
        {F1: [pred_human(head=([(0.0, 0.0, 9.0, 2.0)], ["bend"]))]},
        {},
        1.0,
        id="part-iou-exactly-threshold-accepted",
    ),
    pytest.param(
        {F1: [gt_human(head=(HEAD, "bend"))]},
        {F1: [pred_human(head=([HEAD, HEAD], ["bend", "none"]))]},
        {},
        0.5,
        id="two-proposals-half-credit",
    ),
    pytest.param(
        {F1: [gt_human(head=(HEAD, "bend"))], F2: [gt_human(head=(HEAD, "bend"))]},
        {F1: [pred_human(head=([HEAD], ["bend"]))]},
        {},
        0.5,
        id="missing-pred-frame-counts-zero",
    ),
    pytest.param(
        {F1: [gt_human(head=(HEAD, "bend"))], F2: []},
        {F1: [pred_human(head=([HEAD], ["bend"]))]},
        {},
        1.0,
        id="frame-without-gt-humans-skipped",
    ),
    pytest.param(
        # A predicted frame whose GT humans have no parts leaves T ...
        {F1: [gt_human(head=(HEAD, "bend"))], F2: [gt_human()]},
        {F1: [pred_human(head=([HEAD], ["bend"]))], F2: [pred_human()]},
        {},
        1.0,
        id="frame-without-gt-parts-skipped",
    ),
    pytest.param(
        # ... but the same frame missing from the prediction stays in T.
        {F1: [gt_human(head=(HEAD, "bend"))], F2: [gt_human()]},
        {F1: [pred_human(head=([HEAD], ["bend"]))]},
        {},
        0.5,
        id="frame-without-gt-parts-missing-stays",
    ),
    pytest.param({F1: [], F2: []}, {}, {}, 1.0, id="no-countable-frame-psc-one"),
    pytest.param(
        # n counts every GT part of every GT human, matched or not: 1 of 3.
        {F1: [gt_human(head=(HEAD, "bend"), hip=(HEAD, "none")), gt_human((500.0, 0, 599, 199))]},
        {F1: [pred_human(head=([HEAD], ["bend"]), hip=([HEAD], ["bend"]))]},
        {},
        0.5,
        id="n-counts-all-gt-parts",
    ),
    pytest.param(
        {F1: [gt_human(head=(HEAD, "bend"))]},
        {
            F1: [
                pred_human(
                    head=([HEAD], ["bend"]), hip=([HEAD], ["none"]), left_foot=([HEAD], ["x"])
                ),
                pred_human((300.0, 0.0, 399.0, 199.0), head=([HEAD], ["none"])),
            ]
        },
        {},
        1.0,
        id="extra-humans-and-parts-free",
    ),
    pytest.param(
        {F1: [gt_human(HUMAN_A, head=(HEAD, "bend")), gt_human(HUMAN_B, head=(HEAD, "none"))]},
        {
            F1: [
                pred_human(HUMAN_P, head=([HEAD], ["none"])),
                pred_human(HUMAN_Q, head=([HEAD], ["bend"])),
            ]
        },
        {},
        1.0,
        id="hungarian-one-to-one-not-greedy",
    ),
]


@pytest.mark.parametrize(("gt_frames", "pred_frames", "thresholds", "expected_psc"), QUIRKS)
def test_quirk(gt_frames, pred_frames, thresholds, expected_psc):
    gt, pred = one_video(gt_frames, pred_frames)
    result = evaluate(gt, pred, **thresholds)
    assert result.per_video == {"v": (True, expected_psc)}
    assert result.score == official_loop([True], [expected_psc])


def test_wrong_video_label_zeroes_the_video():
    frames = {F1: [gt_human(head=(HEAD, "bend"))]}
    gt, pred = one_video(frames, {F1: [pred_human(head=([HEAD], ["bend"]))]}, pred_label="surfing")
    result = evaluate(gt, pred)
    assert result.per_video == {"v": (False, 1.0)}
    assert (result.score, result.video_accuracy, result.mean_psc) == (0.0, 0.0, 1.0)


def test_perfect_prediction_is_capped_at_0_9999():
    gt, pred = one_video(
        {F1: [gt_human(head=(HEAD, "bend"))]}, {F1: [pred_human(head=([HEAD], ["bend"]))]}
    )
    result = evaluate(gt, pred)
    assert result.score == PERFECT_AREA
    assert result.score == pytest.approx(0.9999, abs=1e-12)


def test_missing_video_is_an_error():
    gt = GroundTruth({"v1": "lunge", "v2": "lunge"}, {"v1": {}, "v2": {}})
    pred = Prediction({"v1": "lunge"}, {"v1": {}})
    with pytest.raises(FormatError, match=r"^prediction has no video 'v2'$"):
        evaluate(gt, pred)
    with pytest.raises(FormatError, match=r"prediction has no video 'v2' in its part results"):
        evaluate(gt, Prediction({"v1": "lunge", "v2": "lunge"}, {"v1": {}}))


@pytest.mark.parametrize(
    ("pred_frames", "message"),
    [
        pytest.param({F1: [pred_human()] * 11}, "at most 10 humans, got 11", id="11-humans"),
        pytest.param(
            {F1: [pred_human(head=([HEAD] * 6, ["bend"] * 6))]},
            "human 0 part 'head': at most 5 proposals, got 6",
            id="6-proposals",
        ),
        pytest.param(
            {F1: [pred_human(nose=([HEAD], ["bend"]))]}, "unknown part 'nose'", id="unknown-part"
        ),
    ],
)
def test_official_limits_in_memory(pred_frames, message):
    gt, pred = one_video({F1: [gt_human(head=(HEAD, "bend"))]}, pred_frames)
    with pytest.raises(FormatError, match=f"video 'v' frame '{F1}'.*{message}"):
        evaluate(gt, pred)


def test_ground_truth_written_back_as_prediction_scores_0_9999(tmp_path):
    rng = np.random.default_rng(3)
    gt = random_ground_truth(rng, videos=4)
    as_pred = Prediction(
        dict(gt.labels),
        {
            video: {
                key: [
                    PredHuman(h.box, {n: PredPart((p.box,), (p.verb,)) for n, p in h.parts.items()})
                    for h in humans
                ]
                for key, humans in frames.items()
            }
            for video, frames in gt.parts.items()
        },
    )
    write_pred(tmp_path, as_pred)
    result = evaluate(gt, read_pred(tmp_path))
    assert result.video_accuracy == 1.0
    assert all(psc == 1.0 for _, psc in result.per_video.values())
    assert result.score == PERFECT_AREA


def test_inclusive_iou_values():
    boxes_a = np.array([[0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9]], dtype=np.float32)
    boxes_b = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [10, 0, 19, 9]], dtype=np.float32)
    iou = inclusive_iou(boxes_a, boxes_b)
    assert iou.dtype == np.float32
    assert iou.tolist() == [1.0, np.float32(50 / 150), -1.0]


# --- a scalar reference of the DESIGN.md rule, compared bit for bit on random data -------------


def scalar_iou(a, b):
    """IoU of two boxes with Python/NumPy scalars, exactly as the rule is written."""
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    w, h = x2 - x1 + 1, y2 - y1 + 1
    if w <= 0 or h <= 0:
        return -1.0
    inter = w * h
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / union


def reference_psc(gt_frames, pred_frames, human_threshold, part_threshold):
    total, video_sum = len(gt_frames), 0
    for key, gt_humans in gt_frames.items():
        if not gt_humans:
            total -= 1
            continue
        if key not in pred_frames:
            continue
        pred_humans = pred_frames[key]
        gt_boxes = np.float32([h.box for h in gt_humans])
        pred_boxes = np.float32([h.box for h in pred_humans])
        iou = np.zeros((len(gt_humans), len(pred_humans)), dtype=np.float32)
        for i in range(len(gt_humans)):
            for j in range(len(pred_humans)):
                iou[i, j] = scalar_iou(gt_boxes[i], pred_boxes[j])
        n_gt, n_pred = iou.shape
        if n_pred > n_gt:
            iou = np.concatenate((iou, np.full((n_pred - n_gt, n_pred), 0.0)), axis=0)
        if n_gt > n_pred:
            iou = np.concatenate((iou, np.full((n_gt, n_gt - n_pred), 0.0)), axis=1)
        rows, cols = linear_sum_assignment(1 - iou)
        matched = {
            int(r): int(c)
            for r, c in zip(rows, cols, strict=True)
            if c < n_pred and iou[r, c] > human_threshold
        }
        n_parts, frame_sum = 0, 0
        for i, human in enumerate(gt_humans):
            n_parts += len(human.parts)
            human_sum = 0
            if i in matched:
                predicted = pred_humans[matched[i]].parts
                for name, part in human.parts.items():
                    if name in predicted and predicted[name].boxes:
                        proposals = predicted[name]
                        hit = any(
                            scalar_iou(part.box, box) >= part_threshold and verb == part.verb
                            for box, verb in zip(proposals.boxes, proposals.verbs, strict=True)
                        )
                        human_sum += 1.0 * hit / len(proposals.boxes)
            frame_sum += human_sum
        if n_parts == 0:
            total -= 1
        else:
            video_sum += 1.0 * frame_sum / n_parts
    return 1.0 if total == 0 else 1.0 * video_sum / total


GRID = 8.0  # coarse coordinates make ties and exact-threshold IoUs common
VERBS = ("bend", "unbend", "none")


def random_box(rng, size=4):
    x1, y1 = rng.integers(0, 6, 2) * GRID
    w, h = rng.integers(1, size, 2) * GRID
    jitter = rng.random() < 0.3
    return (float(x1), float(y1), float(x1 + w - 1 + (0.37 if jitter else 0)), float(y1 + h - 1))


def random_ground_truth(rng, videos):
    labels, parts = {}, {}
    for v in range(videos):
        labels[f"v{v}"] = "lunge"
        parts[f"v{v}"] = {
            frame_key(5 * f): [
                GtHuman(
                    random_box(rng, 8),
                    {
                        name: GtPart(random_box(rng), str(rng.choice(VERBS)))
                        for name in rng.permutation(PARTS)[: rng.integers(0, 4)]
                    },
                )
                for _ in range(rng.integers(0, 4))
            ]
            for f in range(rng.integers(0, 6))
        }
    return GroundTruth(labels, parts)


def random_proposals(rng, part):
    """0-3 proposals near a GT part: its own box or a random one, often with its verb."""
    count = int(rng.choice([0, 1, 1, 1, 2, 3]))
    return PredPart(
        tuple(part.box if rng.random() < 0.6 else random_box(rng) for _ in range(count)),
        tuple(part.verb if rng.random() < 0.6 else str(rng.choice(VERBS)) for _ in range(count)),
    )


def random_prediction(rng, gt):
    parts = {}
    for video, frames in gt.parts.items():
        parts[video] = {}
        for key, humans in frames.items():
            if rng.random() < 0.15:
                continue
            predicted = [
                PredHuman(
                    h.box if rng.random() < 0.7 else random_box(rng, 8),
                    {n: random_proposals(rng, p) for n, p in h.parts.items() if rng.random() < 0.8},
                )
                for h in humans
            ]
            predicted += [PredHuman(random_box(rng, 8), {}) for _ in range(rng.integers(0, 3))]
            order = rng.permutation(len(predicted))
            parts[video][key] = [predicted[i] for i in order]
    return Prediction(dict(gt.labels), parts)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("human_threshold", "part_threshold"), [(HUMAN_IOU, PART_IOU), (0.1, 0.0)])
def test_matches_scalar_reference_bit_for_bit(seed, human_threshold, part_threshold):
    rng = np.random.default_rng(seed)
    gt = random_ground_truth(rng, videos=25)
    pred = random_prediction(rng, gt)
    result = evaluate(gt, pred, human_iou=human_threshold, part_iou=part_threshold)
    expected = {
        video: reference_psc(gt.parts[video], pred.parts[video], human_threshold, part_threshold)
        for video in gt.labels
    }
    assert {video: psc for video, (_, psc) in result.per_video.items()} == expected
    assert len(set(expected.values())) > 3, "the random data should give varied PSCs"


def test_video_psc_alone():
    frames = {F1: [gt_human(head=(HEAD, "bend"), hip=(HEAD, "none"))]}
    predicted = {F1: [pred_human(head=([HEAD], ["bend"]), hip=([HEAD], ["bend"]))]}
    assert video_psc("v", frames, predicted) == 0.5


# --- the area: the official loop, not the floor closed form --------------------------------------


def test_area_equals_the_official_loop_bit_for_bit():
    rng = np.random.default_rng(0)
    on_thresholds = rng.integers(0, THRESHOLD_STEPS + 1, 40) / THRESHOLD_STEPS
    psc = np.concatenate((rng.random(60), on_thresholds, [0.0, 1.0, 0.57, 0.0029, 0.3])).tolist()
    correct = (rng.random(len(psc)) < 0.8).tolist()
    assert conditioned_area(correct, psc) == official_loop(correct, psc)


def test_closed_form_agrees_to_rounding_but_the_loop_is_the_reference():
    rng = np.random.default_rng(1)
    psc = np.concatenate((rng.random(50), np.arange(0, THRESHOLD_STEPS + 1, 7) / THRESHOLD_STEPS))
    correct = rng.random(psc.size) < 0.7
    area = conditioned_area(correct.tolist(), psc.tolist())
    # Counting thresholds k/10000 <= PSC reproduces the loop up to summation rounding ...
    steps = [sum(1 for k in range(1, THRESHOLD_STEPS) if k / THRESHOLD_STEPS <= p) for p in psc]
    assert area == pytest.approx(np.mean(correct * np.array(steps)) / THRESHOLD_STEPS, abs=1e-10)
    # ... while min(floor(PSC * 10000), 9999) is off by one step on some thresholds (0.57 * 10000
    # is 5699.999...), so it is not what the official loop computes.
    floor_steps = [min(math.floor(p * THRESHOLD_STEPS), THRESHOLD_STEPS - 1) for p in psc]
    assert steps != floor_steps
    assert conditioned_area([True], [0.57]) == official_loop([True], [0.57])
    assert conditioned_area([True], [0.57]) == pytest.approx(0.57, abs=1e-10)
    assert math.floor(0.57 * THRESHOLD_STEPS) == 5699


def test_result_json_shape():
    gt, pred = one_video(
        {F1: [gt_human(head=(HEAD, "bend"))]}, {F1: [pred_human(head=([HEAD], ["x"]))]}
    )
    assert evaluate(gt, pred).as_dict() == {
        "score": 0.0,
        "video_accuracy": 1.0,
        "mean_psc": 0.0,
        "per_video": {"v": {"correct": True, "psc": 0.0}},
    }


def test_bootstrap_interval_brackets_the_score_and_collapses_without_spread():
    same = ScoreResult(0.5, 1.0, 0.5, {f"v{i}": (True, 0.5) for i in range(20)})
    assert same.interval() == pytest.approx((0.5, 0.5))
    mixed = {f"v{i}": (i % 2 == 0, i / 20) for i in range(20)}
    result = ScoreResult(conditioned_area(*zip(*mixed.values(), strict=True)), 0.5, 0.5, mixed)
    low, high = result.interval(resamples=500)
    assert low < result.score < high
    assert result.interval(resamples=500) == (low, high)  # seeded: reproducible
