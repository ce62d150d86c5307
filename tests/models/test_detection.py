"""Hand-checked cases for YOLOF pre/post-processing: anchors, box coding, NMS, decoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.detection import (
    ANCHOR_SIZES,
    CAFFE_BGR,
    IMAGENET_RGB,
    MAX_LOG_WH,
    DetectionError,
    Detections,
    ImageMeta,
    anchor_grid,
    batched_nms,
    box_iou,
    decode,
    decode_deltas,
    encode_deltas,
    letterbox,
    nms,
    preprocess,
)

HIGH_LOGIT = 10.0
LOW_LOGIT = -20.0


def boxes(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_anchor_grid_places_centres_on_stride_multiples_location_major() -> None:
    anchors = anchor_grid((2, 3), stride=32, sizes=(32, 64))
    assert anchors.shape == (2 * 3 * 2, 4)
    assert anchors.dtype == torch.float32
    torch.testing.assert_close(anchors[0], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    torch.testing.assert_close(anchors[1], torch.tensor([-32.0, -32.0, 32.0, 32.0]))
    # y=1, x=2, a=1 -> index (1 * 3 + 2) * 2 + 1 = 11, centre (64, 32), side 64
    torch.testing.assert_close(anchors[11], torch.tensor([32.0, 0.0, 96.0, 64.0]))
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    expected_x = torch.tensor([0, 0, 32, 32, 64, 64] * 2, dtype=torch.float32)
    expected_y = torch.tensor([0] * 6 + [32] * 6, dtype=torch.float32)
    torch.testing.assert_close(centres[:, 0], expected_x)
    torch.testing.assert_close(centres[:, 1], expected_y)


def test_zero_delta_decodes_to_its_anchor() -> None:
    anchors = anchor_grid((4, 5))
    decoded = decode_deltas(anchors, torch.zeros_like(anchors))
    torch.testing.assert_close(decoded, anchors)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        pytest.param([0.01, -0.02, 0.0, 0.0], [5.12, -10.24, 517.12, 501.76], id="inside-clamp"),
        pytest.param([0.5, -0.5, 0.0, 0.0], [32.0, -32.0, 544.0, 480.0], id="centre-clamped"),
        pytest.param(
            [0.0, 0.0, 10.0, -1.0],
            [
                256.0 - 256.0 * 1000 / 16,
                256.0 - 256.0 * math.exp(-1.0),
                256.0 + 256.0 * 1000 / 16,
                256.0 + 256.0 * math.exp(-1.0),
            ],
            id="width-clamped-height-not",
        ),
    ],
)
def test_decode_deltas_clamps_like_yolof(delta: list[float], expected: list[float]) -> None:
    anchor = boxes([[0.0, 0.0, 512.0, 512.0]])
    decoded = decode_deltas(anchor, boxes([delta]))
    torch.testing.assert_close(decoded, boxes([expected]), rtol=1e-5, atol=1e-3)


def test_encode_inverts_decode_inside_the_clamps() -> None:
    anchors = boxes([[0, 0, 32, 32], [10, 20, 138, 148], [-100, -50, 412, 462]])
    targets = boxes([[4, 2, 30, 40], [0, 30, 150, 120], [-80, -40, 380, 480]])
    deltas = encode_deltas(anchors, targets)
    assert deltas[:, 2:].abs().max() < MAX_LOG_WH
    torch.testing.assert_close(decode_deltas(anchors, deltas), targets, rtol=1e-5, atol=1e-4)


def test_box_iou_known_values() -> None:
    iou = box_iou(
        boxes([[0, 0, 10, 10]]), boxes([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    )
    torch.testing.assert_close(iou, boxes([[1.0, 50 / 150, 0.0]]))


def test_nms_suppresses_overlap_but_keeps_a_different_class() -> None:
    # IoU(box 0, box 1) = 81 / 119 = 0.68; box 2 repeats box 0 in class 1; box 3 is apart.
    candidates = boxes([[1, 1, 11, 11], [0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    scores = torch.tensor([0.8, 0.9, 0.7, 0.3])
    labels = torch.tensor([0, 0, 1, 0])
    assert batched_nms(candidates, scores, labels, 0.5).tolist() == [1, 2, 3]
    assert nms(candidates, scores, 0.5).tolist() == [1, 3]
    assert nms(candidates, scores, 0.7).tolist() == [1, 0, 3]


def test_nms_of_nothing_is_empty() -> None:
    empty = torch.zeros(0, 4)
    assert batched_nms(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).numel() == 0
    assert nms(empty, torch.zeros(0), 0.5).numel() == 0


def test_letterbox_keeps_aspect_pads_bottom_right_and_normalises_rgb() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 200, 100, 50
    tensor, meta = letterbox(image, (256, 256))
    assert tensor.shape == (3, 256, 256)
    assert tensor.dtype == torch.float32
    assert meta == ImageMeta(original_hw=(100, 200), scale_xy=(1.28, 1.28), input_hw=(256, 256))
    stats = zip((200, 100, 50), IMAGENET_RGB.mean, IMAGENET_RGB.std, strict=True)
    expected = [(value - mean) / std for value, mean, std in stats]
    torch.testing.assert_close(tensor[:, 64, 128], torch.tensor(expected))
    assert torch.count_nonzero(tensor[:, 128:, :]) == 0


def test_letterbox_caffe_normalisation_swaps_to_bgr() -> None:
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[..., 0], image[..., 2] = 200, 50
    tensor, _ = letterbox(image, (32, 32), CAFFE_BGR)
    torch.testing.assert_close(tensor[:, 0, 0], torch.tensor([50 - 103.53, -116.28, 200 - 123.675]))


def test_preprocess_rejects_non_uint8_rgb() -> None:
    with pytest.raises(DetectionError, match="H,W,3 uint8"):
        preprocess([np.zeros((10, 10), dtype=np.uint8)], (32, 32))
    with pytest.raises(DetectionError, match="H,W,3 uint8"):
        preprocess([np.zeros((10, 10, 3), dtype=np.float32)], (32, 32))


def _maps(
    num_classes: int, hits: list[tuple[int, int, int, int, float]]
) -> tuple[torch.Tensor, ...]:
    """Raw 8x8 maps for one image with zero deltas and logit `value` at (y, x, anchor, class)."""
    num_anchors = len(ANCHOR_SIZES)
    cls_logits = torch.full((1, num_anchors * num_classes, 8, 8), LOW_LOGIT)
    for y, x, anchor, label, value in hits:
        cls_logits[0, anchor * num_classes + label, y, x] = value
    return cls_logits, torch.zeros(1, num_anchors * 4, 8, 8)


def test_decode_maps_back_through_the_letterbox_and_clips() -> None:
    _, meta = letterbox(np.zeros((100, 200, 3), dtype=np.uint8), (256, 256))
    # (y=1, x=2, anchor 1 = 64 px) -> input box [32, 0, 96, 64] -> original / 1.28;
    # (y=0, x=0, anchor 0 = 32 px) -> [-16, -16, 16, 16] -> clipped [0, 0, 12.5, 12.5].
    cls_logits, deltas = _maps(4, [(1, 2, 1, 3, HIGH_LOGIT), (0, 0, 0, 2, 2.0)])
    (found,) = decode(cls_logits, deltas, [meta])
    assert found.labels.tolist() == [3, 2]
    assert found.labels.dtype == torch.int64
    torch.testing.assert_close(found.scores, torch.sigmoid(torch.tensor([HIGH_LOGIT, 2.0])))
    torch.testing.assert_close(found.boxes_xyxy, boxes([[25, 0, 75, 50], [0, 0, 12.5, 12.5]]))


def test_decode_applies_score_threshold_nms_and_top_k() -> None:
    meta = ImageMeta(original_hw=(256, 256), scale_xy=(1.0, 1.0), input_hw=(256, 256))
    # Anchors 64 and 128 at the same centre overlap with IoU 0.25; anchor 32 in (4, 4) is apart.
    hits = [(2, 2, 1, 0, 3.0), (2, 2, 2, 0, 2.0), (4, 4, 0, 0, 1.0), (6, 6, 0, 1, -4.0)]
    cls_logits, deltas = _maps(2, hits)
    (loose,) = decode(cls_logits, deltas, [meta], score_thr=0.05, nms_iou=0.6)
    assert loose.scores.tolist() == pytest.approx(torch.sigmoid(torch.tensor([3.0, 2, 1])).tolist())
    (strict,) = decode(cls_logits, deltas, [meta], score_thr=0.05, nms_iou=0.2)
    assert strict.scores.tolist() == pytest.approx(torch.sigmoid(torch.tensor([3.0, 1])).tolist())
    (top_one,) = decode(cls_logits, deltas, [meta], score_thr=0.05, max_per_image=1)
    assert len(top_one) == 1
    assert top_one.scores.item() == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    (nothing,) = decode(cls_logits, deltas, [meta], score_thr=0.99)
    assert len(nothing) == 0
    assert nothing.boxes_xyxy.shape == (0, 4)


def test_decode_rejects_mismatched_maps() -> None:
    meta = ImageMeta(original_hw=(256, 256), scale_xy=(1.0, 1.0), input_hw=(256, 256))
    cls_logits, deltas = _maps(2, [])
    with pytest.raises(DetectionError, match="bbox_deltas"):
        decode(cls_logits, deltas[:, :8], [meta])
    with pytest.raises(DetectionError, match="2 image metas"):
        decode(cls_logits.repeat(2, 1, 1, 1), deltas.repeat(2, 1, 1, 1), [meta])


def test_detections_reject_inconsistent_lengths() -> None:
    with pytest.raises(DetectionError, match="one K"):
        Detections(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2, dtype=torch.int64))
