"""Uniform matching, focal loss and GIoU loss on hand-made boxes with known answers."""

from __future__ import annotations

import math

import pytest
import torch

import models
from models.detection import anchor_grid, encode_deltas
from training.yolof_loss import (
    IGNORED,
    NEGATIVE,
    giou_loss,
    sigmoid_focal_loss,
    uniform_assign,
    yolof_loss,
)

SIZES = (32, 64)
"""Two anchor sizes on a 2x2 grid at stride 32: 8 anchors, index (y * 2 + x) * 2 + size."""


def _anchors() -> torch.Tensor:
    return anchor_grid((2, 2), 32, SIZES)


def test_anchor_layout_used_by_the_tests() -> None:
    anchors = _anchors()
    assert anchors.shape == (8, 4)
    torch.testing.assert_close(anchors[3], torch.tensor([0.0, -32.0, 64.0, 32.0]))  # x=1,y=0,64


def test_gt_equal_to_an_anchor_makes_it_the_one_positive() -> None:
    anchors = _anchors()
    gt = anchors[5:6].clone()  # x=0, y=1, size 64
    assignment = uniform_assign(anchors, anchors, gt, match_times=1)
    assert assignment.match_anchor.tolist() == [5, 5]  # by prediction, by anchor
    assert assignment.match_gt.tolist() == [0, 0]
    assert assignment.match_valid.tolist() == [True, True]
    expected = [NEGATIVE] * 8
    expected[5] = 1
    assert assignment.assigned_gt.tolist() == expected
    assert assignment.num_positive == 1


def test_prediction_and_anchor_matches_differ_and_far_anchors_are_ignored() -> None:
    anchors = _anchors()
    gt = torch.tensor([[20.0, -12.0, 44.0, 12.0]])  # centre (32, 0), side 24: inside anchor 2
    preds = anchors.clone()
    preds[1] = torch.tensor([19.0, -13.0, 45.0, 13.0])  # anchor 1's prediction nearly hits it
    assignment = uniform_assign(anchors, preds, gt, match_times=1)
    assert assignment.match_anchor.tolist() == [1, 2]  # by prediction, by anchor
    # anchor 1 is (-32, -32, 32, 32): IoU(anchor, gt) = 288 / 4384 < 0.15, so its match is invalid
    assert assignment.match_valid.tolist() == [False, True]
    assert assignment.assigned_gt[1] == IGNORED
    assert assignment.assigned_gt[2] == 1
    assert assignment.num_positive == 1


def test_match_layout_interleaves_prediction_and_anchor_columns() -> None:
    anchors = _anchors()
    gts = torch.stack([anchors[2], anchors[5]])
    assignment = uniform_assign(anchors, anchors, gts, match_times=2)
    # rows t = 0, 1; each row: by-prediction for gt 0, 1, then by-anchor for gt 0, 1
    assert assignment.match_gt.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert assignment.match_anchor[:4].tolist() == [2, 5, 2, 5]


def test_tiny_gt_far_from_every_anchor_gives_only_ignored_matches() -> None:
    anchors = _anchors()
    gt = torch.tensor([[14.0, 14.0, 18.0, 18.0]])  # 4x4 box: IoU with any anchor < 0.15
    assignment = uniform_assign(anchors, anchors, gt, match_times=2)
    assert not assignment.match_valid.any()
    assert assignment.num_positive == 0
    assert set(assignment.assigned_gt[assignment.match_anchor].tolist()) == {IGNORED}


def test_unmatched_prediction_overlapping_a_gt_is_ignored_not_negative() -> None:
    anchors = _anchors()
    gt = anchors[7:8].clone()  # x=1, y=1, size 64: (0, 0, 64, 64)
    preds = anchors.clone()
    preds[0] = gt[0] + torch.tensor([0.0, 0.0, 0.0, -8.0])  # IoU 56/64 = 0.875 > 0.7, not top-1
    assignment = uniform_assign(anchors, preds, gt, match_times=1)
    assert assignment.match_anchor.tolist() == [7, 7]
    assert assignment.assigned_gt[0] == IGNORED
    assert assignment.assigned_gt[7] == 1
    assert (assignment.assigned_gt[1:7] == NEGATIVE).all()


def test_no_gt_means_all_negative() -> None:
    anchors = _anchors()
    assignment = uniform_assign(anchors, anchors, torch.zeros(0, 4))
    assert (assignment.assigned_gt == NEGATIVE).all()
    assert assignment.match_anchor.numel() == 0


def test_focal_loss_known_values() -> None:
    logits = torch.zeros(2, 1)
    targets = torch.tensor([[1.0], [0.0]])
    loss = sigmoid_focal_loss(logits, targets, torch.ones(2))
    expected = (0.25 + 0.75) * 0.25 * math.log(2)  # alpha_t * (1 - p_t)^2 * BCE at p = 0.5
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    ignored = sigmoid_focal_loss(logits, targets, torch.tensor([1.0, 0.0]))
    assert ignored.item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-6)
    confident = sigmoid_focal_loss(torch.tensor([[6.0]]), torch.tensor([[1.0]]), torch.ones(1))
    assert confident.item() < 1e-6  # easy examples barely count


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        pytest.param([0, 0, 2, 1], [0, 0, 2, 1], 0.0, id="identical"),
        pytest.param([0, 0, 2, 1], [1, 0, 3, 1], 2 / 3, id="half-overlap"),  # IoU 1/3, no gap
        pytest.param([0, 0, 1, 1], [2, 0, 3, 1], 4 / 3, id="disjoint"),  # 1 - (0 - 1/3)
    ],
)
def test_giou_loss_known_values(pred: list, target: list, expected: float) -> None:
    loss = giou_loss(torch.tensor([pred], dtype=torch.float32), torch.tensor([target], dtype=float))
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def _maps(deltas_per_anchor: torch.Tensor, logit: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """N=1 maps on the 2x2 grid with 2 anchors and 1 class, from M,4 deltas."""
    deltas = deltas_per_anchor.reshape(1, 2, 2, 2 * 4).permute(0, 3, 1, 2)  # 1,A*4,H,W
    logits = torch.full((1, 2, 2, 2), logit)  # 1,A*K,H,W
    return logits, deltas.contiguous()


def test_yolof_loss_perfect_boxes_have_zero_bbox_loss_and_normalised_focal_loss() -> None:
    anchors = _anchors()
    gt = anchors[5:6].clone()
    perfect = encode_deltas(anchors, gt.expand(8, 4))  # every anchor predicts the gt exactly
    logits, deltas = _maps(perfect)
    losses = yolof_loss(logits, deltas, [gt], [torch.tensor([0])], anchor_sizes=SIZES)
    assert losses["loss_bbox"].item() == pytest.approx(0.0, abs=1e-5)
    # every prediction has IoU 1 with the gt: unmatched ones are ignored, so only the positives
    # count, each 0.25 * (1 - 0.5)^2 * ln 2, and the sum is divided by their number
    assert losses["loss_cls"].item() == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-5)


def test_yolof_loss_regression_pulls_predictions_to_the_gt() -> None:
    anchors = _anchors()
    gt = torch.tensor([[4.0, 36.0, 60.0, 92.0]])
    target = encode_deltas(anchors, gt.expand(8, 4))  # deltas that hit the gt from every anchor
    deltas = torch.zeros(8, 4, requires_grad=True)
    logits, maps = _maps(deltas)
    before = yolof_loss(logits, maps, [gt], [torch.tensor([0])], anchor_sizes=SIZES)["loss_bbox"]
    before.backward()
    assert deltas.grad is not None and deltas.grad.abs().sum() > 0
    logits, maps = _maps(target)
    after = yolof_loss(logits, maps, [gt], [torch.tensor([0])], anchor_sizes=SIZES)["loss_bbox"]
    assert after.item() < 1e-4 < before.item()


def test_yolof_loss_without_gt_is_background_only() -> None:
    logits, deltas = _maps(torch.zeros(8, 4, requires_grad=True))
    losses = yolof_loss(logits, deltas, [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.int64)],
                        anchor_sizes=SIZES)  # fmt: skip
    assert losses["loss_bbox"].item() == 0.0
    assert losses["loss_cls"].item() == pytest.approx(8 * 0.75 * 0.25 * math.log(2), rel=1e-5)


@pytest.mark.parametrize(
    ("name", "input_side", "positive"),
    [
        pytest.param("yolof_tiny", 160, False, id="stride32-anchor32"),
        pytest.param("yolof_tiny_dc5", 256, True, id="dc5-anchor8"),
    ],
)
def test_a_hand_sized_box_gets_a_positive_anchor_only_with_the_small_anchors(
    name: str, input_side: int, positive: bool
) -> None:
    """A 12x12 box (a hand in a part crop) must be matchable, or its class never trains."""
    model = models.build(name, num_classes=3)
    grid = input_side // model.stride
    anchors = anchor_grid((grid, grid), model.stride, model.anchor_sizes)
    hands = torch.tensor([[50.0, 70.0, 62.0, 82.0], [101.0, 37.0, 113.0, 49.0]])
    assignment = uniform_assign(anchors, anchors, hands)
    for index in range(len(hands)):
        assert bool(assignment.match_valid[assignment.match_gt == index].any()) is positive
