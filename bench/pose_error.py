"""Keypoint error of a pose checkpoint: how far, not only how often within a threshold.

    python -m bench.pose_error --weights weights/pose.safetensors [--split data/val]
        [--decoding dark] [--no-flip-test] [--out F]

PCK@0.1 (the pose recipe's validation) counts a keypoint right within a tenth of the person box;
the part boxes need more: a hand is about a twentieth of the person. This reports, on the same
crops the recipe validates on (each annotated person's ground-truth box, `training.pose`'s
samples) and through the parser's own `estimate_keypoints`, the median error as a share of the box
height, the share within 0.025 and 0.05 of it, and the median error and median signed x / y
offset per keypoint.

It also reports whether the network tells left from right (`sides`): for each left / right pair
whose true keypoints lie at least 0.03 heights apart across the image, the share where the
predicted pair is in the same left-to-right order, and the share where the two predictions fall
on one spot (under 0.01 heights apart across), as a network blind to the side puts them.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np

from bench.common import emit
from models.checkpoint import build_from_checkpoint, read_metadata
from models.hrnet import HEATMAP_DECODINGS
from training.pose import COCO_KEYPOINT_NAMES, load_samples, predict_keypoints

SIDE_PAIRS: dict[str, tuple[int, int]] = {
    name: (COCO_KEYPOINT_NAMES.index(f"left_{name}"), COCO_KEYPOINT_NAMES.index(f"right_{name}"))
    for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
}
APART = 0.03
"""True pairs at least this far apart across the image (box heights) have an order to get right."""
SAME_SPOT = 0.01
"""Predicted pairs closer than this across the image (box heights) are on one spot."""


def predicted_and_true(
    weights: Path, split: Path, decoding: str, flip_test: bool, max_videos: int, frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """(persons, 17, 2) predicted and (persons, 17, 3) true keypoints, both in box heights from
    the box's top-left corner."""
    model, _ = build_from_checkpoint(weights)
    shape = json.loads(read_metadata(weights)["input_shape"])
    samples = load_samples(split, frames, 4, max_videos)
    keypoints = predict_keypoints(model, samples, (shape[1], shape[2]), flip_test, decoding)
    corners = samples.boxes_xyxy[:, None, :2]
    heights = (samples.boxes_xyxy[:, 3] - samples.boxes_xyxy[:, 1])[:, None, None]
    truth = samples.keypoints_xyv.astype(np.float64)
    truth[..., :2] = (truth[..., :2] - corners) / heights
    return (keypoints[..., :2] - corners) / heights, truth


def keypoint_offsets(predicted: np.ndarray, truth_xyv: np.ndarray) -> np.ndarray:
    """(persons, 17, 2) predicted minus true keypoint; NaN where unlabelled."""
    offsets = predicted - truth_xyv[..., :2]
    offsets[truth_xyv[..., 2] <= 0] = np.nan
    return offsets


def sides(predicted: np.ndarray, truth_xyv: np.ndarray) -> dict[str, dict[str, float]]:
    """Per left / right pair: how many true pairs lie apart across the image, the share of them
    predicted in the right order, and the share predicted on one spot."""
    result = {}
    for name, (left, right) in SIDE_PAIRS.items():
        true_dx = truth_xyv[:, left, 0] - truth_xyv[:, right, 0]
        predicted_dx = predicted[:, left, 0] - predicted[:, right, 0]
        counted = (truth_xyv[:, left, 2] > 0) & (truth_xyv[:, right, 2] > 0)
        counted &= np.abs(true_dx) >= APART
        total = int(counted.sum())
        order_right = np.sign(predicted_dx) == np.sign(true_dx)
        same_spot = np.abs(predicted_dx) < SAME_SPOT
        result[name] = {
            "apart": total,
            "order_right": round(float(order_right[counted].mean()), 4) if total else math.nan,
            "same_spot": round(float(same_spot[counted].mean()), 4) if total else math.nan,
        }
    return result


def report(offsets: np.ndarray) -> dict[str, object]:
    """The summary of (persons, 17, 2) offsets; a keypoint never labelled gets NaN figures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmedian of an all-NaN column
        return _summary(offsets)


def _summary(offsets: np.ndarray) -> dict[str, object]:
    errors = np.linalg.norm(offsets, axis=-1)  # NaN stays NaN
    labelled = ~np.isnan(errors)

    def share_within(limit: float) -> float:
        return round(float((errors[labelled] < limit).mean()), 4)

    return {
        "keypoints": int(labelled.sum()),
        "median_error": round(float(np.nanmedian(errors)), 4),
        "within_0.025": share_within(0.025),
        "within_0.05": share_within(0.05),
        "within_0.1": share_within(0.1),
        "per_keypoint": {
            name: {
                "median_error": round(float(np.nanmedian(errors[:, k])), 4),
                "median_dx": round(float(np.nanmedian(offsets[:, k, 0])), 4),
                "median_dy": round(float(np.nanmedian(offsets[:, k, 1])), 4),
            }
            for k, name in enumerate(COCO_KEYPOINT_NAMES)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="pose checkpoint (HRNet)")
    parser.add_argument("--split", type=Path, default=Path("data/val"))
    parser.add_argument("--decoding", choices=HEATMAP_DECODINGS, default=HEATMAP_DECODINGS[0])
    parser.add_argument("--no-flip-test", dest="flip_test", action="store_false")
    parser.add_argument("--max-videos", type=int, default=50)
    parser.add_argument("--frames-per-video", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    predicted, truth = predicted_and_true(
        args.weights,
        args.split,
        args.decoding,
        args.flip_test,
        args.max_videos,
        args.frames_per_video,
    )
    emit(
        {
            "weights": str(args.weights),
            "decoding": args.decoding,
            **report(keypoint_offsets(predicted, truth)),
            "sides": sides(predicted, truth),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
