"""The Kinetics-TPS vocabulary: parts, part types, actions and the public part states."""

from __future__ import annotations

PARTS: tuple[str, ...] = (
    "head", "hip", "left_arm", "right_arm", "left_hand", "right_hand",
    "left_leg", "right_leg", "left_foot", "right_foot",
)  # fmt: skip

PART_TYPES: tuple[str, ...] = ("head", "hand", "arm", "hip", "leg", "foot")

PART_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (part, part.replace("left", "right")) for part in PARTS if part.startswith("left")
)
"""(left, right) parts of one type: the arms, hands, legs and feet."""


def part_type(part: str) -> str:
    """The part type of a part: ``left_arm`` -> ``arm``, ``head`` -> ``head``."""
    return part.rsplit("_", 1)[-1]


ACTIONS: tuple[str, ...] = (
    "capoeira", "country_line_dancing", "salsa_dancing", "skipping_rope", "hitting_baseball",
    "hurling_(sport)", "clean_and_jerk", "belly_dancing", "riding_mechanical_bull", "skateboarding",
    "deadlifting", "hopscotch", "snatch_weight_lifting", "pull_ups", "front_raises", "push_up",
    "throwing_discus", "lunge", "juggling_balls", "hammer_throw", "surfing_crowd", "punching_bag",
    "crawling_baby", "tobogganing",
)  # fmt: skip

STATES: tuple[str, ...] = (
    "none", "others", "bend", "unbend", "lift", "hug", "push", "pull", "hold", "grab", "applaud",
    "carry", "swing", "strike", "clutch", "stand", "step", "step_on", "tiptoe", "jump", "crouch",
    "raise", "turn", "sit", "stoop",
)  # fmt: skip

ANNOTATION_STRIDE = 5
"""Every 5th frame is annotated: img_00001.json, img_00006.json, ..."""


def frame_key(frame_index: int) -> str:
    """The annotation key of a 0-based frame index: 0 -> ``img_00001.json``."""
    return f"img_{frame_index + 1:05d}.json"


def frame_index(key: str) -> int:
    """The 0-based frame index of an annotation key: ``img_00006.json`` -> 5."""
    return int(key[len("img_") : -len(".json")]) - 1
