"""Articulated people: proportions, clothing, a pose, forward kinematics and drawable shapes.

A person lives in its own world frame, in units of body height (about 1.0 standing): x points
forward, y up, z to the person's left; the origin is on the ground under the resting pelvis. Limb
angles are absolute, in the sagittal (x, y) plane, measured from pointing straight down and positive
towards +x (0 = hanging, pi/2 = pointing forward, pi = straight up); abduction tilts a limb out of
that plane towards its own side. The camera turns the person by ``yaw`` about the vertical axis,
mirrors it by ``facing``, scales it to pixels and stands it on a ground line of the frame.

The body frame (x forward, y up, z left) is left-handed, so the camera mirrors its z as well: seen
from the front a person's left is on the image's right, walking towards the image's right a person
shows the right side, and ``facing = -1`` is the mirror image with left and right swapped, as a
horizontal flip of a real photograph is (the flip augmentation and flip test assume so).

Pixel convention: column j, row i has its centre at (x, y) = (j, i); keypoints and shapes use the
same frame coordinates, so a keypoint at x = 10.0 lies on the centre of column 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tps.vocabulary import PARTS

LEFT, RIGHT = 0, 1
SIDE_SIGNS = (1.0, -1.0)
"""z sign of each side: the person's left is +z."""

# Joint indices of `skeleton`'s (NUM_JOINTS, 3) array.
J_PELVIS, J_NECK, J_HEAD, J_HAIR, J_NOSE, J_LEYE, J_REYE, J_LEAR, J_REAR = range(9)
J_SHOULDER = (9, 10)
J_ELBOW = (11, 12)
J_WRIST = (13, 14)
J_HAND = (15, 16)
J_HIP = (17, 18)
J_KNEE = (19, 20)
J_ANKLE = (21, 22)
J_HEEL = (23, 24)
J_TOE = (25, 26)
NUM_JOINTS = 27

COCO_JOINTS: tuple[int, ...] = (
    J_NOSE, J_LEYE, J_REYE, J_LEAR, J_REAR, *J_SHOULDER, *J_ELBOW, *J_WRIST, *J_HIP, *J_KNEE,
    *J_ANKLE,
)  # fmt: skip
"""Our joints in COCO-17 order: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles."""

TORSO_LABEL = 1
"""Label of torso and neck pixels, which belong to the person but to no TPS part."""

PART_LABELS: dict[str, int] = {part: TORSO_LABEL + 1 + i for i, part in enumerate(PARTS)}
"""Per-person label of each TPS part's pixels (2..11)."""

LABEL_STRIDE = TORSO_LABEL + 1 + len(PARTS)
"""Labels per person: person slot k owns labels k * LABEL_STRIDE + 1 .. + LABEL_STRIDE - 1."""

MAX_PEOPLE = 255 // LABEL_STRIDE
"""People per frame that fit into a uint8 label map."""

CAPSULE, ELLIPSE, POLYGON = "capsule", "ellipse", "polygon"

SHAPE_LABELS: dict[str, int] = {
    "torso": TORSO_LABEL,
    "neck": TORSO_LABEL,
    "pelvis": PART_LABELS["hip"],
    "face": PART_LABELS["head"],
    "hair": PART_LABELS["head"],
    **{
        f"{name}_{side}": PART_LABELS[part.format(side=side)]
        for side in ("left", "right")
        for name, part in (
            ("upper_arm", "{side}_arm"),
            ("lower_arm", "{side}_arm"),
            ("hand", "{side}_hand"),
            ("thigh", "{side}_leg"),
            ("shin", "{side}_leg"),
            ("foot", "{side}_foot"),
        )
    },
}
"""Every drawable shape by name, with the per-person label its pixels get."""

RGB = tuple[int, int, int]

_SKIN_TONES: tuple[RGB, ...] = (
    (255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
    (92, 58, 32),
)  # fmt: skip
_HAIR_COLOURS: tuple[RGB, ...] = (
    (20, 16, 12), (60, 40, 25), (110, 75, 40), (200, 170, 100), (130, 130, 130),
)  # fmt: skip
_SHORT_SLEEVE_P = 0.5
_SHORTS_P = 0.3
_LENGTH_JITTER = 0.07
"""Relative spread of limb lengths between people."""
_WIDTH_JITTER = 0.15
"""Relative spread of limb widths between people."""
_FACE_RADII = (0.95, 0.75, 0.95)
"""Distance of nose, eyes and ears from the head centre, in head radii."""
_EYE_ANGLE = 0.45
"""Eyes sit this far (radians) either side of the face direction."""
_HAIR_OFFSET = (-0.35, 0.3)
"""Hair ellipse centre behind and above the head centre, in head radii."""
_HAIR_SIZE = 0.85
_TORSO_WIDEN = 0.02
"""How far the torso outline reaches beyond the shoulder and hip joints."""
_DEPTH_LIGHT = 0.8
"""Brightness change per unit of depth: far limbs are drawn a little darker."""
_LIGHT_RANGE = (0.75, 1.1)


@dataclass(frozen=True, slots=True)
class Proportions:
    """Segment lengths and radii of one body, in units of body height."""

    torso: float = 0.30
    neck: float = 0.035
    head_rx: float = 0.058
    head_ry: float = 0.072
    shoulder_half: float = 0.10
    hip_half: float = 0.06
    chest_r: float = 0.06
    pelvis_r: float = 0.065
    neck_r: float = 0.028
    upper_arm: float = 0.17
    lower_arm: float = 0.15
    upper_arm_r: tuple[float, float] = (0.038, 0.032)
    lower_arm_r: tuple[float, float] = (0.03, 0.024)
    hand_r: float = 0.03
    thigh: float = 0.245
    shin: float = 0.235
    thigh_r: tuple[float, float] = (0.062, 0.047)
    shin_r: tuple[float, float] = (0.045, 0.033)
    ankle_height: float = 0.045
    heel_back: float = 0.03
    foot_length: float = 0.115
    foot_r: float = 0.024

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Proportions:
        """A body with every length and width jittered around the defaults."""
        base = cls()

        def length(value: float) -> float:
            return value * float(rng.uniform(1 - _LENGTH_JITTER, 1 + _LENGTH_JITTER))

        width = float(rng.uniform(1 - _WIDTH_JITTER, 1 + _WIDTH_JITTER))
        return cls(
            torso=length(base.torso),
            head_rx=length(base.head_rx),
            head_ry=length(base.head_ry),
            shoulder_half=base.shoulder_half * width,
            hip_half=base.hip_half * width,
            chest_r=base.chest_r * width,
            pelvis_r=base.pelvis_r * width,
            upper_arm=length(base.upper_arm),
            lower_arm=length(base.lower_arm),
            upper_arm_r=(base.upper_arm_r[0] * width, base.upper_arm_r[1] * width),
            lower_arm_r=(base.lower_arm_r[0] * width, base.lower_arm_r[1] * width),
            thigh=length(base.thigh),
            shin=length(base.shin),
            thigh_r=(base.thigh_r[0] * width, base.thigh_r[1] * width),
            shin_r=(base.shin_r[0] * width, base.shin_r[1] * width),
            foot_length=length(base.foot_length),
        )

    @property
    def hip_height(self) -> float:
        """Pelvis height above the ground when standing straight."""
        return self.thigh + self.shin + self.ankle_height


@dataclass(frozen=True, slots=True)
class Appearance:
    """Colour of every drawable shape (keys of `SHAPE_LABELS`), RGB 0..255."""

    colours: dict[str, RGB]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Appearance:
        """Random skin, hair, shirt, trousers and shoes; sleeves and trouser legs may be short."""
        skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
        hair = _HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))]
        shirt = _colour(rng, brightness=(60, 250))
        trousers = _colour(rng, brightness=(30, 170))
        shoes = _colour(rng, brightness=(10, 90))
        sleeve = skin if rng.random() < _SHORT_SLEEVE_P else shirt
        legwear = skin if rng.random() < _SHORTS_P else trousers
        colours = {"torso": shirt, "neck": skin, "pelvis": trousers, "face": skin, "hair": hair}
        for side in ("left", "right"):
            colours |= {
                f"upper_arm_{side}": shirt,
                f"lower_arm_{side}": sleeve,
                f"hand_{side}": skin,
                f"thigh_{side}": trousers,
                f"shin_{side}": legwear,
                f"foot_{side}": shoes,
            }
        return cls(colours)


def _colour(rng: np.random.Generator, brightness: tuple[int, int]) -> RGB:
    """A random colour whose brightest channel lies in `brightness`."""
    top = rng.uniform(*brightness)
    mix = rng.uniform(0.15, 1.0, size=3)
    mix[rng.integers(3)] = 1.0
    red, green, blue = (int(v) for v in np.clip(top * mix, 0, 255))
    return (red, green, blue)


def _pair() -> list[float]:
    return [0.0, 0.0]


@dataclass(slots=True)
class Pose:
    """Joint angles (radians) and placement of one person at one instant.

    Per-side lists are ``[left, right]``. ``trunk`` tilts the torso forward from vertical;
    ``neck`` tilts the head further; ``head_yaw`` turns it towards the person's left. ``foot`` is
    the pitch of each foot, positive with toes down. The skeleton is moved vertically so that its
    lowest contact point (soles, hands, knees) is ``lift`` above the ground, or, when ``hang`` is
    set, so that the hands are at height ``hang`` (a bar).
    """

    trunk: float = 0.0
    neck: float = 0.0
    head_yaw: float = 0.0
    arm_upper: list[float] = field(default_factory=_pair)
    arm_lower: list[float] = field(default_factory=_pair)
    arm_abd: list[float] = field(default_factory=_pair)
    leg_upper: list[float] = field(default_factory=_pair)
    leg_lower: list[float] = field(default_factory=_pair)
    leg_abd: list[float] = field(default_factory=_pair)
    foot: list[float] = field(default_factory=_pair)
    root_x: float = 0.0
    lift: float = 0.0
    hang: float | None = None


def limb_direction(angle: float, abduction: float, side: int) -> np.ndarray:
    """Unit vector (3,) of a limb at absolute sagittal `angle` with `abduction` towards `side`."""
    cos_abd = math.cos(abduction)
    return np.array(
        (
            math.sin(angle) * cos_abd,
            -math.cos(angle) * cos_abd,
            SIDE_SIGNS[side] * math.sin(abduction),
        )
    )


def skeleton(body: Proportions, pose: Pose, place: bool = True) -> np.ndarray:
    """World positions of all joints: float64 (NUM_JOINTS, 3), ground at y = 0.

    With ``place=False`` the pelvis stays at height 0 (motion programs use this to solve limb
    targets before the skeleton is stood on the ground or hung from the bar).

    Hands and toes are the centres of the hand and the toe end of the foot; heel and toe are the
    ends of the foot's centre line, one foot radius above the sole.
    """
    joints = np.zeros((NUM_JOINTS, 3))
    up = np.array((math.sin(pose.trunk), math.cos(pose.trunk), 0.0))
    pelvis = np.array((pose.root_x, 0.0, 0.0))
    neck = pelvis + body.torso * up
    pitch = pose.trunk + pose.neck
    head_up = np.array((math.sin(pitch), math.cos(pitch), 0.0))
    head = neck + (body.neck + body.head_ry) * head_up
    joints[J_PELVIS], joints[J_NECK], joints[J_HEAD] = pelvis, neck, head
    radius = body.head_rx
    for index, turn, reach, rise in (
        (J_NOSE, 0.0, _FACE_RADII[0], 0.0),
        (J_LEYE, _EYE_ANGLE, _FACE_RADII[1], 0.25),
        (J_REYE, -_EYE_ANGLE, _FACE_RADII[1], 0.25),
        (J_LEAR, math.pi / 2, _FACE_RADII[2], 0.05),
        (J_REAR, -math.pi / 2, _FACE_RADII[2], 0.05),
    ):
        yaw = pose.head_yaw + turn
        facing = np.array(
            (math.cos(pitch) * math.cos(yaw), -math.sin(pitch) * math.cos(yaw), math.sin(yaw))
        )
        joints[index] = head + radius * (reach * facing + rise * head_up)
    forward = np.array(
        (
            math.cos(pitch) * math.cos(pose.head_yaw),
            -math.sin(pitch) * math.cos(pose.head_yaw),
            math.sin(pose.head_yaw),
        )
    )
    joints[J_HAIR] = head + radius * (_HAIR_OFFSET[0] * forward + _HAIR_OFFSET[1] * head_up)
    for side in (LEFT, RIGHT):
        lateral = np.array((0.0, 0.0, SIDE_SIGNS[side]))
        shoulder = neck + body.shoulder_half * lateral
        elbow = shoulder + body.upper_arm * limb_direction(
            pose.arm_upper[side], pose.arm_abd[side], side
        )
        lower = limb_direction(pose.arm_lower[side], pose.arm_abd[side], side)
        wrist = elbow + body.lower_arm * lower
        hip = pelvis + body.hip_half * lateral
        knee = hip + body.thigh * limb_direction(pose.leg_upper[side], pose.leg_abd[side], side)
        ankle = knee + body.shin * limb_direction(pose.leg_lower[side], pose.leg_abd[side], side)
        sole = ankle + np.array((0.0, body.foot_r - body.ankle_height, 0.0))
        toe_way = np.array((math.cos(pose.foot[side]), -math.sin(pose.foot[side]), 0.0))
        joints[J_SHOULDER[side]], joints[J_ELBOW[side]], joints[J_WRIST[side]] = (
            shoulder,
            elbow,
            wrist,
        )
        joints[J_HAND[side]] = wrist + body.hand_r * lower
        joints[J_HIP[side]], joints[J_KNEE[side]], joints[J_ANKLE[side]] = hip, knee, ankle
        joints[J_HEEL[side]] = sole - body.heel_back * toe_way
        joints[J_TOE[side]] = sole + body.foot_length * toe_way
    if not place:
        return joints
    if pose.hang is not None:
        shift = pose.hang - joints[list(J_HAND), 1].mean()
    else:
        shift = pose.lift - contact_height(body, joints)
    joints[:, 1] += shift
    return joints


def contact_height(body: Proportions, joints: np.ndarray) -> float:
    """Height of the lowest point that can touch the ground: soles, hands or knees."""
    soles = joints[[*J_HEEL, *J_TOE], 1].min() - body.foot_r
    hands = joints[list(J_HAND), 1].min() - body.hand_r
    knees = joints[list(J_KNEE), 1].min() - body.shin_r[0]
    return float(min(soles, hands, knees))


def foot_heights(body: Proportions, joints: np.ndarray) -> tuple[float, float]:
    """Height of each sole's lowest point above the ground, (left, right)."""
    left, right = (
        float(min(joints[J_HEEL[side], 1], joints[J_TOE[side], 1]) - body.foot_r)
        for side in (LEFT, RIGHT)
    )
    return left, right


@dataclass(frozen=True, slots=True)
class Camera:
    """How one person appears in the frame: turned by `yaw`, mirrored by `facing`, scaled.

    ``x`` and ``ground_y`` are the frame position (pixels) of the world origin; ``scale`` is pixels
    per body height.
    """

    yaw: float
    facing: float
    x: float
    ground_y: float
    scale: float

    def project(
        self, points: np.ndarray, shift: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frame coordinates and depth of world points.

        Args:
            points: float (N, 3) world positions.
            shift: (dx, dy) pixels added to every point (camera jitter).

        Returns:
            xy float (N, 2) pixel coordinates; depth float (N,) in body units, larger is nearer.
        """
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        lateral = -self.facing * points[:, 2]  # the left-handed body frame, mirrored per facing
        across = points[:, 0] * cos_yaw + lateral * sin_yaw
        depth = lateral * cos_yaw - points[:, 0] * sin_yaw
        xy = np.empty((len(points), 2))
        xy[:, 0] = self.x + shift[0] + self.facing * self.scale * across
        xy[:, 1] = self.ground_y + shift[1] - self.scale * points[:, 1]
        return xy, depth


class Shape(NamedTuple):
    """One filled primitive in frame coordinates.

    ``geometry``: capsule ``(ax, ay, bx, by, radius_a, radius_b)``; ellipse
    ``(cx, cy, rx, ry, angle)`` with `rx` along the direction `angle` (radians, image axes);
    polygon ``(x0, y0, x1, y1, ...)``, convex, either winding.
    """

    depth: float
    kind: str
    label: int
    colour: tuple[float, float, float]
    geometry: tuple[float, ...]


def shapes(
    body: Proportions, appearance: Appearance, camera: Camera, xy: np.ndarray, depth: np.ndarray
) -> list[Shape]:
    """The person's shapes sorted far to near, with per-person labels (`SHAPE_LABELS`)."""
    scale = camera.scale
    listed: list[tuple[str, str, tuple[float, ...], float]] = []

    def capsule(name: str, a: int, b: int, radii: tuple[float, float]) -> None:
        geometry = (*xy[a], *xy[b], radii[0] * scale, radii[1] * scale)
        listed.append((name, CAPSULE, geometry, 0.5 * (depth[a] + depth[b])))

    for side, word in ((LEFT, "left"), (RIGHT, "right")):
        capsule(f"thigh_{word}", J_HIP[side], J_KNEE[side], body.thigh_r)
        capsule(f"shin_{word}", J_KNEE[side], J_ANKLE[side], body.shin_r)
        capsule(f"foot_{word}", J_HEEL[side], J_TOE[side], (body.foot_r, body.foot_r))
    capsule("pelvis", J_HIP[LEFT], J_HIP[RIGHT], (body.pelvis_r, body.pelvis_r))
    torso = _torso_outline(body, camera, xy)
    if torso is not None:
        listed.append(("torso", POLYGON, torso, depth[J_PELVIS]))
    capsule("torso", J_PELVIS, J_NECK, (body.pelvis_r, body.chest_r))
    capsule("neck", J_NECK, J_HEAD, (body.neck_r, body.neck_r))
    angle = math.atan2(xy[J_HEAD, 1] - xy[J_NECK, 1], xy[J_HEAD, 0] - xy[J_NECK, 0])
    head = (body.head_ry * scale, body.head_rx * scale)
    listed.append(("face", ELLIPSE, (*xy[J_HEAD], *head, angle), depth[J_HEAD]))
    hair = (head[0] * _HAIR_SIZE, head[1] * _HAIR_SIZE)
    listed.append(("hair", ELLIPSE, (*xy[J_HAIR], *hair, angle), depth[J_HAIR]))
    for side, word in ((LEFT, "left"), (RIGHT, "right")):
        capsule(f"upper_arm_{word}", J_SHOULDER[side], J_ELBOW[side], body.upper_arm_r)
        capsule(f"lower_arm_{word}", J_ELBOW[side], J_WRIST[side], body.lower_arm_r)
        capsule(f"hand_{word}", J_HAND[side], J_HAND[side], (body.hand_r, body.hand_r))
    ordered = sorted(enumerate(listed), key=lambda item: (item[1][3], item[0]))
    result = []
    for _, (name, kind, geometry, shape_depth) in ordered:
        light = min(max(1.0 + _DEPTH_LIGHT * float(shape_depth), _LIGHT_RANGE[0]), _LIGHT_RANGE[1])
        red, green, blue = (min(255.0, channel * light) for channel in appearance.colours[name])
        result.append(
            Shape(float(shape_depth), kind, SHAPE_LABELS[name], (red, green, blue), geometry)
        )
    return result


def _torso_outline(body: Proportions, camera: Camera, xy: np.ndarray) -> tuple[float, ...] | None:
    """The torso quadrilateral through widened shoulders and hips, or None when edge-on."""
    widen = _TORSO_WIDEN * camera.scale * abs(math.sin(camera.yaw))
    corners = []
    for a, b in ((J_SHOULDER[LEFT], J_SHOULDER[RIGHT]), (J_HIP[RIGHT], J_HIP[LEFT])):
        direction = xy[b] - xy[a]
        length = float(np.hypot(*direction))
        if length < 1.0:
            return None
        unit = direction / length
        corners += [xy[a] - widen * unit, xy[b] + widen * unit]
    return tuple(float(v) for corner in corners for v in corner)
