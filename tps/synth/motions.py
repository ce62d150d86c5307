"""Motion programs (one per action), small random events, and part states read off the motion.

A motion program maps time to a `Pose` in closed form, so any instant can be evaluated without the
ones before it. Every person gets its own tempo, phase, duty cycle (how a repetition splits into
moving out, holding, moving back and resting), amplitude and leading side. On top of the program,
rare events (a head turn, a hand or foot shifting, the hips swaying) happen in fixed time windows
decided by a hash of the person's seed, which gives every part type a long tail of states.

Part states are not scripted: `part_states` measures the motion of each part around the instant
(elbow and knee flexion speed, arm elevation speed, wrist and foot speed, airborne feet, head turn
speed) and classifies it into a motion class (e.g. ``flex``); each action then names the class with
a public Kinetics-TPS state (e.g. push_up: ``flex`` -> ``bend``, ``extend`` -> ``unbend``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tps.synth.body import (
    J_ANKLE,
    J_ELBOW,
    J_HIP,
    J_KNEE,
    J_NECK,
    J_PELVIS,
    J_SHOULDER,
    J_TOE,
    J_WRIST,
    LEFT,
    RIGHT,
    Pose,
    Proportions,
    foot_heights,
    skeleton,
)
from tps.vocabulary import PARTS, part_type

STATE_DT = 0.04
"""Half-width (s) of the central difference that measures part motion."""
ANGLE_RATE = 1.0
"""A joint angle changing faster than this (rad/s) counts as moving."""
TURN_RATE = 1.0
"""Head yaw speed (rad/s) above which the head is turning."""
RISE_SPEED = 0.35
"""Vertical wrist speed (body heights/s) above which a still-jointed arm rises or sinks."""
HAND_SPEEDS = (0.35, 1.6)
"""Wrist speeds (body heights/s) separating still, moving and fast hands."""
FOOT_SPEED = 0.5
"""Foot speed relative to the pelvis (body heights/s) above which a foot is moving."""
AIR_HEIGHT = 0.02
"""A sole this high (body heights) above the ground is in the air."""
BENT_ELBOW = 0.4
BENT_KNEE = 0.5
BENT_HIP = 0.6
"""Flexion (rad) above which a still joint counts as held bent."""
HIGH_ARM = 1.0
"""Upper-arm elevation (rad from hanging) above which a still straight arm counts as raised."""

EVENT_WINDOW_S = 1.6
"""Events are drawn per window of this many seconds; each lasts part of one window."""
EVENT_DURATION_S = (0.5, 0.9)
EVENT_KINDS = ("head", "hand", "foot", "hip")
_EVENT_GAIN = {"head": 0.9, "hand": 1.2, "foot": 1.0, "hip": 0.5}
"""Peak angle (rad) an event adds to the joint it moves."""
_LEAD_STRIKES = 0.6
"""Share of punches thrown by the leading arm."""
BAR_HEIGHT = 1.3
"""Height of the pull-up bar (body heights)."""

_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A splitmix64 hash of integers: cheap, deterministic randomness for any instant."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state + (value & _MASK64) + 0x9E3779B97F4A7C15) & _MASK64
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & _MASK64
        state ^= state >> 31
    return state


def unit_hash(*values: int) -> float:
    """A deterministic number in [0, 1) from integers."""
    return _mix(*values) / float(1 << 64)


@dataclass(frozen=True, slots=True)
class Motion:
    """One person's way of doing the video's action.

    Attributes:
        action: the action (a key of `SPECS`).
        period: seconds per repetition.
        phase: where in the repetition the person is at t = 0, in [0, 1).
        duty: fractions of a repetition spent moving out, holding, moving back and resting.
        amplitude: relative size of the movement (about 1).
        lead: the leading side (`LEFT` or `RIGHT`).
        alternate: whether the leading side alternates between repetitions.
        seed: decides events and per-repetition choices.
    """

    action: str
    period: float
    phase: float
    duty: tuple[float, float, float, float]
    amplitude: float
    lead: int
    alternate: bool
    seed: int


def _ease(x: float) -> float:
    """Smooth 0 -> 1 on [0, 1] with zero speed at both ends."""
    return 0.5 - 0.5 * math.cos(math.pi * min(max(x, 0.0), 1.0))


def _pulse(p: float, duty: tuple[float, float, float, float]) -> float:
    """A repetition as a value in [0, 1]: rise, hold at 1, fall, rest at 0 (`duty` fractions)."""
    rise, hold, fall, _ = duty
    if p < rise:
        return _ease(p / rise)
    if p < rise + hold:
        return 1.0
    if p < rise + hold + fall:
        return 1.0 - _ease((p - rise - hold) / fall)
    return 0.0


def _cycle(motion: Motion, t: float) -> tuple[int, float]:
    """Repetition index and position in it, in [0, 1)."""
    position = t / motion.period + motion.phase
    index = math.floor(position)
    return index, position - index


def _side(motion: Motion, index: int) -> int:
    """The side leading repetition `index`."""
    return (motion.lead + index) % 2 if motion.alternate else motion.lead


def _lerp(a: float, b: float, x: float) -> float:
    return a + (b - a) * x


def _reach(
    root: tuple[float, float], target: tuple[float, float], upper: float, lower: float, bend: float
) -> tuple[float, float]:
    """Two-link inverse kinematics in the sagittal plane.

    Returns absolute angles (from pointing down, + forward) of the two segments so that the chain
    from `root` ends at `target` (or points at it when out of reach); ``bend=+1`` puts the middle
    joint in front of the root-target line (knees), ``-1`` behind it.
    """
    dx, dy = target[0] - root[0], target[1] - root[1]
    distance = min(max(math.hypot(dx, dy), abs(upper - lower) + 1e-6), upper + lower - 1e-6)
    base = math.atan2(dx, -dy)
    cos_inner = (upper * upper + distance * distance - lower * lower) / (2 * upper * distance)
    first = base + bend * math.acos(min(max(cos_inner, -1.0), 1.0))
    middle = (root[0] + upper * math.sin(first), root[1] - upper * math.cos(first))
    return first, math.atan2(target[0] - middle[0], -(target[1] - middle[1]))


def _stand(pose: Pose, body: Proportions, feet: tuple[float, float], drop: float) -> None:
    """Bend the legs so both soles are flat on the ground at forward positions `feet`.

    Args:
        feet: (left, right) ankle x positions in the person's world frame.
        drop: how far the pelvis sits below its straight-legged height.
    """
    height = body.hip_height - drop
    for side in (LEFT, RIGHT):
        target = (feet[side] - pose.root_x, body.ankle_height - height)
        pose.leg_upper[side], pose.leg_lower[side] = _reach(
            (0.0, 0.0), target, body.thigh, body.shin, 1.0
        )


def _push_up(motion: Motion, t: float, body: Proportions) -> Pose:
    """Plank on toes and hands; the elbows bend to lower the plank and unbend to raise it."""
    _, p = _cycle(motion, t)
    elbow = _lerp(0.12, 1.6, min(_pulse(p, motion.duty) * motion.amplitude, 1.0))
    upper, lower, forward = body.upper_arm, body.lower_arm + body.hand_r, 0.03
    reach = math.sqrt(upper * upper + lower * lower + 2 * upper * lower * math.cos(elbow))
    toes = 1.2
    # shoulder height above the floor, pivoting on the toes, must match the arms' reach
    height = math.sqrt(reach * reach - forward * forward) + body.hand_r
    lift = height - body.ankle_height - body.foot_length * math.sin(toes)
    alpha = math.asin(min(max(lift / (body.torso + body.thigh + body.shin), 0.0), 1.0))
    leg = alpha - math.pi / 2
    pose = Pose(trunk=math.pi / 2 - alpha, neck=-0.35)
    pose.leg_upper, pose.leg_lower = [leg, leg], [leg, leg]
    pose.leg_abd, pose.foot = [0.04, 0.04], [toes, toes]
    joints = skeleton(body, pose, place=False)
    floor = min(joints[J_TOE[side], 1] for side in (LEFT, RIGHT)) - body.foot_r
    for side in (LEFT, RIGHT):
        shoulder = joints[J_SHOULDER[side]]
        target = (shoulder[0] + forward, floor + body.hand_r)
        pose.arm_upper[side], pose.arm_lower[side] = _reach(
            (shoulder[0], shoulder[1]), target, upper, lower, -1.0
        )
        pose.arm_abd[side] = 0.12
    return pose


def _pull_ups(motion: Motion, t: float, body: Proportions) -> Pose:
    """Hanging from a bar; the elbows bend to lift the chin over it and unbend to lower."""
    _, p = _cycle(motion, t)
    lift = min(_pulse(p, motion.duty) * motion.amplitude, 1.0)
    pose = Pose(trunk=-0.06 - 0.08 * lift, neck=-0.15 * lift, hang=BAR_HEIGHT)
    thigh = 0.1 + 0.3 * lift
    pose.leg_upper, pose.leg_lower = [thigh, thigh], [thigh - 0.5, thigh - 0.5]
    pose.foot = [0.9, 0.9]
    abduction = 0.3
    joints = skeleton(body, pose, place=False)
    upper = body.upper_arm * math.cos(abduction)
    lower = (body.lower_arm + body.hand_r) * math.cos(abduction)
    for side in (LEFT, RIGHT):
        shoulder = joints[J_SHOULDER[side]]
        rise = (upper + lower) * (1.0 - 0.78 * lift)
        pose.arm_upper[side], pose.arm_lower[side] = _reach(
            (shoulder[0], shoulder[1]), (shoulder[0] + 0.05, shoulder[1] + rise), upper, lower, -1.0
        )
        pose.arm_abd[side] = abduction
    return pose


def _front_raises(motion: Motion, t: float, body: Proportions) -> Pose:
    """Standing; straight arms raise to the front (together or alternating) and lower."""
    _, p = _cycle(motion, t)
    pose = Pose()
    for side in (LEFT, RIGHT):
        own = (p + 0.5 * side) % 1.0 if motion.alternate else p
        angle = _pulse(own, motion.duty) * motion.amplitude * math.radians(95)
        pose.arm_upper[side], pose.arm_lower[side] = angle, angle + 0.12
        pose.arm_abd[side] = 0.12
    pose.trunk = -0.06 * _pulse(p, motion.duty)
    _stand(pose, body, (0.03, -0.03), 0.01)
    pose.leg_abd = [0.05, 0.05]
    return pose


def _lunge(motion: Motion, t: float, body: Proportions) -> Pose:
    """Step forward, lower until the back knee nears the floor, rise, step back.

    With `alternate` the legs take turns leading; `duty` splits the lowering part into descend,
    hold and rise, then a standing rest.
    """
    index, p = _cycle(motion, t)
    lead = _side(motion, index)
    step, rest = 0.12, motion.duty[3]
    span = 1.0 - 2 * step - rest
    if p < step:
        out = _ease(p / step)
    elif p < step + span:
        out = 1.0
    else:
        out = 1.0 - _ease((p - step - span) / step)
    moving = motion.duty[0] + motion.duty[1] + motion.duty[2]
    inner = (motion.duty[0] / moving, motion.duty[1] / moving, motion.duty[2] / moving, 0.0)
    depth = _pulse((p - step) / span, inner) if step <= p < step + span else 0.0
    front = 0.42 * motion.amplitude * out
    back = -0.05
    pelvis_x = 0.42 * front
    legs = body.thigh + body.shin
    height = body.hip_height - 0.03 * out - 0.2 * motion.amplitude * depth
    reach = (legs - 0.005) ** 2
    for foot_x in (front, back):
        height = min(height, body.ankle_height + math.sqrt(reach - (foot_x - pelvis_x) ** 2))
    pose = Pose(trunk=0.05 + 0.05 * depth, root_x=pelvis_x)
    for side, foot_x, raised in (
        (lead, front, 0.07 * math.sin(math.pi * out)),
        (1 - lead, back, 0.05 * depth),
    ):
        target = (foot_x - pelvis_x, body.ankle_height + raised - height)
        pose.leg_upper[side], pose.leg_lower[side] = _reach(
            (0.0, 0.0), target, body.thigh, body.shin, 1.0
        )
    pose.foot[1 - lead] = 0.7 * depth
    pose.arm_upper, pose.arm_lower, pose.arm_abd = [0.08, 0.08], [0.3, 0.3], [0.15, 0.15]
    return pose


def _deadlifting(motion: Motion, t: float, body: Proportions) -> Pose:
    """Stoop with hips back and knees bent to a bar at shin height, then lift it standing up."""
    _, p = _cycle(motion, t)
    down = min(_pulse(p, motion.duty) * motion.amplitude, 1.05)
    pose = Pose(trunk=1.2 * down, neck=-0.7 * down, root_x=-0.1 * down)
    pose.leg_upper, pose.leg_lower = [0.6 * down] * 2, [-0.12 * down] * 2
    pose.leg_abd = [0.06, 0.06]
    pose.arm_upper, pose.arm_lower, pose.arm_abd = [0.03, 0.03], [0.03, 0.03], [0.08, 0.08]
    return pose


def _skipping_rope(motion: Motion, t: float, body: Proportions) -> Pose:
    """Small hops (one per rope turn) with soft landings; the hands circle at the hips.

    `duty[0]` is the airborne fraction of a hop; with `alternate` the feet take turns.
    """
    index, p = _cycle(motion, t)
    air = motion.duty[0]
    pose = Pose(trunk=0.05)
    if p < air:
        hop = math.sin(math.pi * p / air)
        pose.lift, crouch = 0.1 * motion.amplitude * hop, 0.0
        pose.foot = [0.45 * hop, 0.45 * hop]
    else:
        hop, crouch = 0.0, 0.3 * math.sin(math.pi * (p - air) / (1.0 - air))
    pose.leg_upper, pose.leg_lower = [0.9 * crouch] * 2, [-0.9 * crouch] * 2
    if motion.alternate:
        side = _side(motion, index)
        pose.leg_upper[side] += 0.35 * hop
        pose.leg_lower[side] -= 0.2 * hop
    turn = 2 * math.pi * p
    for side in (LEFT, RIGHT):
        pose.arm_upper[side] = 0.35 + 0.12 * math.sin(turn)
        pose.arm_lower[side] = 1.0 + 0.5 * math.sin(turn + 0.8)
        pose.arm_abd[side] = 0.45 + 0.12 * math.cos(turn)
    return pose


def _punching_bag(motion: Motion, t: float, body: Proportions) -> Pose:
    """Boxing guard with a bouncing stance; each repetition one arm strikes forward and retracts."""
    index, p = _cycle(motion, t)
    lead = motion.lead
    striker = lead if unit_hash(motion.seed, index) < _LEAD_STRIKES else 1 - lead
    strike = _pulse(p, motion.duty) * motion.amplitude
    pose = Pose(trunk=0.12 + 0.04 * strike)
    for side in (LEFT, RIGHT):
        out = strike if side == striker else 0.0
        pose.arm_upper[side] = _lerp(0.55, 1.55, out)
        pose.arm_lower[side] = _lerp(2.5, 1.6, out)
        pose.arm_abd[side] = _lerp(0.2, 0.05, out)
    bounce = 0.5 + 0.5 * math.sin(2 * math.pi * t / (0.6 * motion.period) + motion.phase)
    feet = [0.0, 0.0]
    feet[lead], feet[1 - lead] = 0.14, -0.14
    _stand(pose, body, (feet[0], feet[1]), 0.03 + 0.015 * bounce)
    return pose


def _hopscotch(motion: Motion, t: float, body: Proportions) -> Pose:
    """Hops on one leg with the other tucked up; every fourth hop lands on both feet.

    `duty[0]` is the airborne fraction of a hop.
    """
    index, p = _cycle(motion, t)
    air = motion.duty[0]
    stance = motion.lead
    pose = Pose(trunk=0.1, root_x=0.15 * math.sin(2 * math.pi * t / (8 * motion.period)))
    if p < air:
        pose.lift, crouch = 0.09 * motion.amplitude * math.sin(math.pi * p / air), 0.0
    else:
        crouch = 0.4 * math.sin(math.pi * (p - air) / (1.0 - air))
    landing = _ease(p / air)
    if index % 4 == 3:
        down = landing
    elif index % 4 == 0:
        down = 1.0 - landing
    else:
        down = 0.0
    pose.leg_upper[stance], pose.leg_lower[stance] = 0.9 * crouch, -0.9 * crouch
    raised = 1 - stance
    pose.leg_upper[raised] = _lerp(0.75, 0.9 * crouch, down)
    pose.leg_lower[raised] = _lerp(-0.85, -0.9 * crouch, down)
    swing = 0.25 * math.sin(2 * math.pi * p)
    pose.arm_upper, pose.arm_lower = [0.2 + swing, 0.2 - swing], [0.6, 0.6]
    pose.arm_abd = [0.45, 0.45]
    return pose


Program = Callable[[Motion, float, Proportions], Pose]
StateTable = dict[str, dict[str, str]]
"""part type -> motion class -> state; the class ``"*"`` names every class not listed."""

_HEAD = {"turn": "turn", "*": "none"}
_STAND_LEG = {"flex": "bend", "bent": "bend", "extend": "unbend", "air": "step", "*": "stand"}
_STAND_FOOT = {"air": "step", "moving": "step", "*": "stand"}
_STILL_HIP = {"flex": "bend", "extend": "unbend", "*": "none"}


@dataclass(frozen=True)
class ActionSpec:
    """How one action is performed and labelled.

    Attributes:
        program: the motion program.
        period: range of seconds per repetition.
        duty: ranges of the four `Motion.duty` fractions (normalised to sum 1 after sampling).
        yaw: range of the camera yaw (rad; 0 = profile, -pi/2 = facing the camera).
        height: person height relative to the frame-dependent default.
        alternate_p: probability that the leading side alternates.
        events: probability of each event kind per `EVENT_WINDOW_S` window.
        states: motion class -> state per part type.
    """

    program: Program
    period: tuple[float, float]
    duty: tuple[tuple[float, float], ...]
    yaw: tuple[float, float]
    states: StateTable
    events: dict[str, float]
    height: float = 1.0
    alternate_p: float = 0.0


_PROFILE = (-0.6, 0.6)
_FRONTAL = (-1.45, -0.7)

SPECS: dict[str, ActionSpec] = {
    "push_up": ActionSpec(
        program=_push_up,
        period=(1.6, 2.6),
        duty=((0.5, 0.65), (0.1, 0.2), (0.2, 0.28), (0.02, 0.08)),
        yaw=_PROFILE,
        height=0.9,
        events={"head": 0.3, "hand": 0.25, "foot": 0.2, "hip": 0.3},
        states={
            "head": _HEAD,
            "arm": {"flex": "bend", "bent": "bend", "extend": "unbend", "*": "none"},
            "hand": {"still": "push", "*": "others"},
            "hip": _STILL_HIP,
            "leg": {"flex": "bend", "extend": "unbend", "*": "none"},
            "foot": {"moving": "others", "air": "others", "*": "tiptoe"},
        },
    ),
    "pull_ups": ActionSpec(
        program=_pull_ups,
        period=(1.8, 2.8),
        duty=((0.4, 0.5), (0.2, 0.3), (0.2, 0.25), (0.02, 0.08)),
        yaw=_PROFILE,
        height=0.75,
        events={"head": 0.3, "hand": 0.4, "foot": 0.3, "hip": 0.3},
        states={
            "head": _HEAD,
            "arm": {"flex": "pull", "bent": "pull", "extend": "unbend", "*": "none"},
            "hand": {"still": "hold", "*": "grab"},
            "hip": _STILL_HIP,
            "leg": {"flex": "bend", "extend": "unbend", "*": "none"},
            "foot": {"moving": "others", "*": "none"},
        },
    ),
    "front_raises": ActionSpec(
        program=_front_raises,
        period=(2.0, 3.2),
        duty=((0.38, 0.45), (0.08, 0.15), (0.3, 0.38), (0.02, 0.08)),
        yaw=(-1.1, 0.6),
        alternate_p=0.3,
        events={"head": 0.3, "hand": 0.1, "foot": 0.3, "hip": 0.3},
        states={
            "head": _HEAD,
            "arm": {
                "raise": "raise",
                "lower": "raise",
                "rise": "raise",
                "sink": "raise",
                "high": "lift",
                "flex": "bend",
                "extend": "unbend",
                "*": "none",
            },  # fmt: skip
            "hand": {"still": "hold", "*": "lift"},
            "hip": _STILL_HIP,
            "leg": _STAND_LEG,
            "foot": _STAND_FOOT,
        },
    ),
    "lunge": ActionSpec(
        program=_lunge,
        period=(2.4, 3.4),
        duty=((0.35, 0.45), (0.2, 0.3), (0.15, 0.22), (0.03, 0.08)),
        yaw=_PROFILE,
        alternate_p=0.6,
        events={"head": 0.3, "hand": 0.3, "hip": 0.1},
        states={
            "head": _HEAD,
            "arm": {"flex": "bend", "extend": "unbend", "*": "none"},
            "hand": {"still": "none", "*": "others"},
            "hip": {"flex": "crouch", "bent": "crouch", "extend": "unbend", "*": "none"},
            "leg": _STAND_LEG,
            "foot": _STAND_FOOT,
        },
    ),
    "deadlifting": ActionSpec(
        program=_deadlifting,
        period=(2.2, 3.2),
        duty=((0.35, 0.45), (0.12, 0.2), (0.25, 0.3), (0.05, 0.12)),
        yaw=_PROFILE,
        events={"head": 0.3, "hand": 0.3, "foot": 0.3, "hip": 0.2},
        states={
            "head": _HEAD,
            "arm": {
                "rise": "lift",
                "raise": "lift",
                "flex": "bend",
                "extend": "unbend",
                "*": "hold",
            },
            "hand": {"still": "hold", "*": "grab"},
            "hip": {"flex": "stoop", "bent": "stoop", "extend": "unbend", "*": "none"},
            "leg": _STAND_LEG,
            "foot": _STAND_FOOT,
        },
    ),
    "skipping_rope": ActionSpec(
        program=_skipping_rope,
        period=(0.38, 0.52),
        duty=((0.6, 0.75), (0.0, 0.0), (0.0, 0.0), (0.25, 0.4)),
        yaw=_FRONTAL,
        alternate_p=0.3,
        events={"head": 0.3, "hip": 0.2, "foot": 0.2},
        states={
            "head": _HEAD,
            "arm": {"bent": "bend", "high": "bend", "low": "none", "*": "swing"},
            "hand": {"still": "hold", "*": "swing"},
            "hip": {"still": "none", "*": "jump"},
            "leg": {"air": "jump", "extend": "jump", "flex": "bend", "*": "stand"},
            "foot": {"air": "jump", "moving": "jump", "*": "stand"},
        },
    ),
    "punching_bag": ActionSpec(
        program=_punching_bag,
        period=(0.6, 1.0),
        duty=((0.1, 0.14), (0.03, 0.06), (0.12, 0.16), (0.45, 0.6)),
        yaw=_PROFILE,
        events={"head": 0.3, "foot": 0.3, "hip": 0.3},
        states={
            "head": _HEAD,
            "arm": {"extend": "strike", "raise": "strike", "flex": "strike", "*": "bend"},
            "hand": {"still": "none", "*": "strike"},
            "hip": {"flex": "turn", "extend": "turn", "*": "none"},
            "leg": _STAND_LEG,
            "foot": _STAND_FOOT,
        },
    ),
    "hopscotch": ActionSpec(
        program=_hopscotch,
        period=(0.42, 0.6),
        duty=((0.45, 0.6), (0.0, 0.0), (0.0, 0.0), (0.4, 0.55)),
        yaw=_PROFILE,
        events={"head": 0.3, "hand": 0.3},
        states={
            "head": _HEAD,
            "arm": {"raise": "swing", "lower": "swing", "*": "none"},
            "hand": {"still": "none", "*": "others"},
            "hip": {"air": "jump", "*": "none"},
            "leg": {
                "air": "jump",
                "flex": "bend",
                "bent": "bend",
                "extend": "unbend",
                "*": "stand",
            },
            "foot": {"air": "jump", "moving": "jump", "*": "stand"},
        },
    ),
}
"""The synthetic actions, a subset of `tps.vocabulary.ACTIONS`."""

SYNTH_ACTIONS: tuple[str, ...] = tuple(SPECS)


def sample_motion(action: str, rng: np.random.Generator) -> Motion:
    """Draw one person's tempo, phase, duty cycle, amplitude and sides for `action`."""
    spec = SPECS[action]
    duty = np.array([rng.uniform(low, high) for low, high in spec.duty])
    duty = duty / duty.sum()
    first, second, third, fourth = (float(v) for v in duty)
    return Motion(
        action=action,
        period=float(rng.uniform(*spec.period)),
        phase=float(rng.random()),
        duty=(first, second, third, fourth),
        amplitude=float(rng.uniform(0.85, 1.1)),
        lead=int(rng.integers(2)),
        alternate=bool(rng.random() < spec.alternate_p),
        seed=int(rng.integers(1 << 62)),
    )


def pose_at(motion: Motion, body: Proportions, t: float) -> Pose:
    """The person's pose at time `t` (s): the action's program plus any event under way."""
    spec = SPECS[motion.action]
    pose = spec.program(motion, t, body)
    window = math.floor(t / EVENT_WINDOW_S)
    for code, kind in enumerate(EVENT_KINDS):
        chance = spec.events.get(kind, 0.0)
        if unit_hash(motion.seed, code, window, 0) >= chance:
            continue
        low, high = EVENT_DURATION_S
        duration = _lerp(low, high, unit_hash(motion.seed, code, window, 1))
        start = window * EVENT_WINDOW_S + (EVENT_WINDOW_S - duration) * unit_hash(
            motion.seed, code, window, 2
        )
        x = (t - start) / duration
        if not 0.0 < x < 1.0:
            continue
        sign = 1.0 if unit_hash(motion.seed, code, window, 3) < 0.5 else -1.0
        _apply_event(pose, kind, sign, _EVENT_GAIN[kind] * math.sin(math.pi * x) ** 2)
    return pose


def _apply_event(pose: Pose, kind: str, sign: float, amount: float) -> None:
    """Add one event's displacement; `sign` also picks the side for hands and feet."""
    side = LEFT if sign > 0 else RIGHT
    if kind == "head":
        pose.head_yaw += sign * amount
    elif kind == "hand":
        pose.arm_lower[side] += amount
    elif kind == "foot":
        pose.leg_lower[side] -= amount
        pose.foot[side] += 0.5 * amount
    else:
        pose.trunk += sign * amount


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) between two vectors."""
    cos = float(a @ b) / (float(np.linalg.norm(a) * np.linalg.norm(b)) + 1e-12)
    return math.acos(min(max(cos, -1.0), 1.0))


def _flexion(joints: np.ndarray, a: int, b: int, c: int) -> float:
    """How far joint b is bent (0 = straight) between segments b-a and b-c."""
    return math.pi - _angle(joints[a] - joints[b], joints[c] - joints[b])


_DOWN = np.array((0.0, -1.0, 0.0))


def _hip_flexion(joints: np.ndarray, side: int) -> float:
    trunk = joints[J_NECK] - joints[J_PELVIS]
    return math.pi - _angle(trunk, joints[J_KNEE[side]] - joints[J_HIP[side]])


def _arm_class(before: np.ndarray, now: np.ndarray, after: np.ndarray, side: int) -> str:
    shoulder, elbow, wrist = J_SHOULDER[side], J_ELBOW[side], J_WRIST[side]
    flex = _flexion(now, shoulder, elbow, wrist)
    flex_rate = _flexion(after, shoulder, elbow, wrist) - _flexion(before, shoulder, elbow, wrist)
    elevation = _angle(now[elbow] - now[shoulder], _DOWN)
    lift_rate = _angle(after[elbow] - after[shoulder], _DOWN) - _angle(
        before[elbow] - before[shoulder], _DOWN
    )
    flex_rate /= 2 * STATE_DT
    lift_rate /= 2 * STATE_DT
    if max(abs(flex_rate), abs(lift_rate)) > ANGLE_RATE:
        if abs(flex_rate) >= abs(lift_rate):
            return "flex" if flex_rate > 0 else "extend"
        return "raise" if lift_rate > 0 else "lower"
    rise = (after[wrist, 1] - before[wrist, 1]) / (2 * STATE_DT)
    if abs(rise) > RISE_SPEED:
        return "rise" if rise > 0 else "sink"
    if flex > BENT_ELBOW:
        return "bent"
    return "high" if elevation > HIGH_ARM else "low"


def _speed(before: np.ndarray, after: np.ndarray, joint: int, origin: int | None = None) -> float:
    """Speed (body heights/s) of a joint, relative to `origin` when given."""
    moved = after[joint] - before[joint]
    if origin is not None:
        moved = moved - (after[origin] - before[origin])
    return float(np.linalg.norm(moved)) / (2 * STATE_DT)


def _bend_class(rate: float, flex: float, bent: float, airborne: bool) -> str:
    """Class of a hip or knee: flexing, extending, in the air, held bent or still."""
    if abs(rate) > ANGLE_RATE:
        return "flex" if rate > 0 else "extend"
    if airborne:
        return "air"
    return "bent" if flex > bent else "still"


def motion_classes(
    body: Proportions, poses: tuple[Pose, ...], joints: tuple[np.ndarray, ...]
) -> dict[str, str]:
    """Motion class of every part from poses and skeletons at t - dt, t, t + dt."""
    before, now, after = joints
    yaw_rate = (poses[2].head_yaw - poses[0].head_yaw) / (2 * STATE_DT)
    classes = {"head": "turn" if abs(yaw_rate) > TURN_RATE else "still"}
    heights = foot_heights(body, now)
    airborne = min(heights) > AIR_HEIGHT
    hip_rate = max(
        (
            (_hip_flexion(after, s) - _hip_flexion(before, s)) / (2 * STATE_DT)
            for s in (LEFT, RIGHT)
        ),
        key=abs,
    )
    hip_flex = max(_hip_flexion(now, side) for side in (LEFT, RIGHT))
    classes["hip"] = _bend_class(hip_rate, hip_flex, BENT_HIP, airborne)
    for side, word in ((LEFT, "left"), (RIGHT, "right")):
        classes[f"{word}_arm"] = _arm_class(before, now, after, side)
        speed = _speed(before, after, J_WRIST[side], J_SHOULDER[side])
        classes[f"{word}_hand"] = (
            "still" if speed < HAND_SPEEDS[0] else "moving" if speed < HAND_SPEEDS[1] else "fast"
        )
        knee = (J_HIP[side], J_KNEE[side], J_ANKLE[side])
        knee_rate = (_flexion(after, *knee) - _flexion(before, *knee)) / (2 * STATE_DT)
        in_air = heights[side] > AIR_HEIGHT
        classes[f"{word}_leg"] = _bend_class(knee_rate, _flexion(now, *knee), BENT_KNEE, in_air)
        if _speed(before, after, J_ANKLE[side], J_PELVIS) > FOOT_SPEED:
            classes[f"{word}_foot"] = "moving"
        else:
            classes[f"{word}_foot"] = "air" if in_air else "ground"
    return classes


def part_states(motion: Motion, body: Proportions, t: float) -> dict[str, str]:
    """The Kinetics-TPS state of each of the 10 parts at time `t`, read off the motion."""
    poses = tuple(pose_at(motion, body, t + dt) for dt in (-STATE_DT, 0.0, STATE_DT))
    joints = tuple(skeleton(body, pose) for pose in poses)
    classes = motion_classes(body, poses, joints)
    table = SPECS[motion.action].states
    states = {}
    for part in PARTS:
        names = table[part_type(part)]
        states[part] = names.get(classes[part], names["*"])
    return states
