"""The 10 Kinetics-TPS part boxes derived from a COCO-17 pose, without a part network (numpy only).

The report's point is that the pose tells where the parts are; here it is taken literally, so the
parser gets part boxes on any footage a pose network works on (the real set has no part detector):

- head: the confident face points (nose, eyes, ears), padded;
- hip: the two hips, padded;
- arms: shoulder, elbow, wrist, padded; legs: hip, knee, ankle, padded;
- hands: a square beyond the wrist, along the forearm (the hand has no COCO keypoint);
- feet: a rectangle across the end of the shin, reaching forward, where the face looks (nose
  ahead of the eyes and ears), since a foot points the way its person faces; centred on the shin's
  axis when the face does not tell.

Every length is a multiple of the person's scale, the torso length (shoulder midpoint to hip
midpoint), so the geometry holds at any resolution; a person whose torso is not visible is
measured by the longer side of its box instead. A part whose keypoints are not all confident is
omitted rather than guessed (the head needs one confident face point). Each part's score is the
mean score of the keypoints it was built from.

The constants (`PartGeometry`, `FITTED`) were fitted on the synthetic training split's ground
truth, never on a test split: ``python -m bench.keypoint_parts fit --split data/train``.

Boxes are (x1, y1, x2, y2) in frame pixels, clipped to the frame's inclusive pixel range
(0..W-1, 0..H-1); keypoints are (17, 3) x, y, score in frame pixels, COCO-17 order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parsing.real_models import COCO17
from tps.vocabulary import PARTS

KEYPOINT = {name: index for index, name in enumerate(COCO17)}
FACE = tuple(KEYPOINT[name] for name in COCO17[:5])
"""Nose, eyes and ears: the head's keypoints."""
SHOULDERS = (KEYPOINT["left_shoulder"], KEYPOINT["right_shoulder"])
HIPS = (KEYPOINT["left_hip"], KEYPOINT["right_hip"])
SIDES = ("left", "right")
MIN_SCALE_PX = 1.0
"""A degenerate torso (shoulders on the hips) is no scale; the box's is used instead."""

PartBox = tuple[np.ndarray, float]
"""A part: ((4,) float32 box in frame pixels, score)."""


@dataclass(frozen=True)
class PartGeometry:
    """Where each part lies relative to its keypoints, in units of the person's scale.

    Attributes:
        head_pad: border around the confident face points (the skull and hair extend beyond them).
        hip_pad: border around the two hips.
        arm_pad: border around shoulder, elbow and wrist (the arm's thickness).
        leg_pad: border around hip, knee and ankle.
        hand_reach: the hand's centre lies this many forearm lengths beyond the wrist.
        hand_size: side of the hand's square box.
        foot_reach: the foot's centre lies this far beyond the ankle along the shin.
        foot_forward: ... and this far forward, across the shin (towards where the face looks).
        foot_length: the foot's extent across the shin (heel to toe).
        foot_thickness: the foot's extent along the shin.
        torso_per_box: torso length per longer box side, the scale when no torso is visible.
    """

    head_pad: float
    hip_pad: float
    arm_pad: float
    leg_pad: float
    hand_reach: float
    hand_size: float
    foot_reach: float
    foot_forward: float
    foot_length: float
    foot_thickness: float
    torso_per_box: float


FITTED = PartGeometry(
    head_pad=0.15,
    hip_pad=0.20,
    arm_pad=0.10,
    leg_pad=0.15,
    hand_reach=0.20,
    hand_size=0.15,
    foot_reach=0.10,
    foot_forward=0.15,
    foot_length=0.50,
    foot_thickness=0.20,
    torso_per_box=0.30,
)
"""Fitted on the first 80 videos of the synthetic train split (2,171 annotated persons; ``python
-m bench.keypoint_parts fit --split data/train --max-videos 80``; a split's videos do not depend
on its size, so ``run.py synth --videos 80 --seed 0 --split train`` gives the same). Share of the
ground truth parts these boxes find at inclusive IoU >= 0.5 there: head 0.86, hip 0.87, arms
0.80, legs 0.85, hands 0.88, feet 0.35 (a foot is a few pixels high and points either way)."""


def person_scale(
    keypoints_xys: np.ndarray, box_xyxy: np.ndarray, min_score: float, torso_per_box: float
) -> float:
    """The person's length unit: the torso length, else `torso_per_box` x the box's longer side.

    The torso runs from the mean of the confident shoulders to the mean of the confident hips
    (one of each suffices).
    """
    confident = keypoints_xys[:, 2] >= min_score
    shoulders = [index for index in SHOULDERS if confident[index]]
    hips = [index for index in HIPS if confident[index]]
    if shoulders and hips:
        torso = keypoints_xys[shoulders, :2].mean(axis=0) - keypoints_xys[hips, :2].mean(axis=0)
        length = float(np.hypot(*torso))
        if length >= MIN_SCALE_PX:
            return length
    x1, y1, x2, y2 = (float(value) for value in box_xyxy)
    return torso_per_box * max(x2 - x1, y2 - y1, MIN_SCALE_PX)


def _around(keypoints_xys: np.ndarray, indices: list[int], pad: float) -> PartBox:
    """The box around some keypoints, `pad` pixels wider on every side, and their mean score."""
    points = keypoints_xys[indices]
    low, high = points[:, :2].min(axis=0) - pad, points[:, :2].max(axis=0) + pad
    return np.concatenate((low, high)).astype(np.float32), float(points[:, 2].mean())


def _beyond(keypoints_xys: np.ndarray, base: int, end: int, reach: float, side: float) -> PartBox:
    """A square of `side` pixels centred `reach` segment lengths beyond `end`, away from `base`."""
    start, stop = keypoints_xys[base, :2], keypoints_xys[end, :2]
    centre = stop + reach * (stop - start)
    half = side / 2
    box = np.concatenate((centre - half, centre + half)).astype(np.float32)
    return box, float(keypoints_xys[[base, end], 2].mean())


def facing(keypoints_xys: np.ndarray, confident: np.ndarray) -> np.ndarray | None:
    """(2,) unit vector from the mean of the confident eyes and ears to the nose; None unless the
    nose and one of them are confident (or the two coincide)."""
    behind = [index for index in FACE[1:] if confident[index]]
    if not confident[FACE[0]] or not behind:
        return None
    ahead = keypoints_xys[FACE[0], :2] - keypoints_xys[behind, :2].mean(axis=0)
    length = float(np.hypot(*ahead))
    return ahead / length if length > 0 else None


def _foot(
    keypoints_xys: np.ndarray,
    knee: int,
    ankle: int,
    forward: np.ndarray | None,
    scale: float,
    geometry: PartGeometry,
) -> PartBox | None:
    """The box around a rectangle across the end of the shin, reaching `forward` when known."""
    shin = keypoints_xys[ankle, :2] - keypoints_xys[knee, :2]
    length = float(np.hypot(*shin))
    if length == 0:
        return None
    along = shin / length
    across = np.array([-along[1], along[0]])
    ahead = 0.0
    if forward is not None:
        across = across if float(across @ forward) >= 0 else -across
        ahead = geometry.foot_forward
    centre = keypoints_xys[ankle, :2] + scale * (geometry.foot_reach * along + ahead * across)
    half = (
        scale
        / 2
        * (geometry.foot_length * np.abs(across) + geometry.foot_thickness * np.abs(along))
    )
    box = np.concatenate((centre - half, centre + half)).astype(np.float32)
    return box, float(keypoints_xys[[knee, ankle], 2].mean())


def keypoint_parts(
    keypoints_xys: np.ndarray,
    box_xyxy: np.ndarray,
    frame_hw: tuple[int, int],
    *,
    min_score: float,
    geometry: PartGeometry = FITTED,
) -> dict[str, PartBox]:
    """The part boxes of one person from its pose.

    Args:
        keypoints_xys: (17, 3) COCO-17 x, y in frame pixels and a score.
        box_xyxy: (4,) the person's box in frame pixels (its scale when no torso is visible).
        frame_hw: (height, width) of the frame; boxes are clipped to it.
        min_score: keypoints scoring below this are not used.
        geometry: the constants (default: fitted on the synthetic train split).

    Returns:
        {part: ((4,) float32 box, score)} in `tps.vocabulary.PARTS` order, for the parts whose
        keypoints are confident and whose box overlaps the frame.
    """
    points = np.asarray(keypoints_xys, dtype=np.float32).reshape(len(COCO17), 3)
    confident = points[:, 2] >= min_score
    scale = person_scale(points, np.asarray(box_xyxy), min_score, geometry.torso_per_box)
    found: dict[str, PartBox] = {}
    face = [index for index in FACE if confident[index]]
    forward = facing(points, confident)
    if face:
        found["head"] = _around(points, face, geometry.head_pad * scale)
    if confident[list(HIPS)].all():
        found["hip"] = _around(points, list(HIPS), geometry.hip_pad * scale)
    for side in SIDES:
        shoulder, elbow, wrist, hip, knee, ankle = (
            KEYPOINT[f"{side}_{joint}"]
            for joint in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
        )
        for part, chain, pad in (
            ("arm", [shoulder, elbow, wrist], geometry.arm_pad),
            ("leg", [hip, knee, ankle], geometry.leg_pad),
        ):
            if confident[chain].all():
                found[f"{side}_{part}"] = _around(points, chain, pad * scale)
        if confident[[elbow, wrist]].all():
            found[f"{side}_hand"] = _beyond(
                points, elbow, wrist, geometry.hand_reach, geometry.hand_size * scale
            )
        if confident[[knee, ankle]].all():
            foot = _foot(points, knee, ankle, forward, scale, geometry)
            if foot is not None:
                found[f"{side}_foot"] = foot
    height, width = frame_hw
    clipped: dict[str, PartBox] = {}
    for name in PARTS:
        if name not in found:
            continue
        box, score = found[name]
        box[0::2] = box[0::2].clip(0, width - 1)
        box[1::2] = box[1::2].clip(0, height - 1)
        if box[2] > box[0] and box[3] > box[1]:
            clipped[name] = (box, score)
    return clipped
