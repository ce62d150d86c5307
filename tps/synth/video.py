"""`SynthVideo`: a random-access synthetic video of 1..N articulated people doing one action.

Frame `i` is a pure function of the seed and `i` (no state carries from frame to frame), so a live
source can render an endless video and a training loader can sample any frame.

    video = SynthVideo(seed=7, size=(320, 240), fps=25)
    image = video.frame(12)                 # uint8 (240, 320, 3) RGB
    humans = video.annotations(12)          # person box, COCO-17 keypoints, part boxes and states

Boxes are ``(x1, y1, x2, y2)`` floats holding integers: the inclusive pixel bounds of what is
visible of the person or part in the frame (the Kinetics-TPS convention, ``x2`` is the last column).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tps.synth.body import (
    COCO_JOINTS,
    LABEL_STRIDE,
    MAX_PEOPLE,
    PART_LABELS,
    Appearance,
    Camera,
    Proportions,
    shapes,
    skeleton,
)
from tps.synth.errors import SynthParamError
from tps.synth.motions import (
    SPECS,
    SYNTH_ACTIONS,
    Motion,
    part_states,
    pose_at,
    sample_motion,
    unit_hash,
)
from tps.synth.render import SHADE_LEVELS, Raster, compose, textured_background

Box = tuple[float, float, float, float]

JITTER_MARGIN = 4
"""Largest camera shake (pixels) in each direction."""
MIN_SIZE = 32
MAX_DEFAULT_PEOPLE = 3
"""Without an explicit count a video has 1..this many people."""
VISIBLE, OCCLUDED, OUTSIDE = 2, 1, 0
"""Keypoint visibility flags (COCO): visible, covered by another person, outside the frame."""
_SHAKE_PX = (0.0, 2.5)
_SHAKE_HZ = (0.3, 1.5)
_TREMOR_PX = (0.0, 0.8)
_GROUND = (0.78, 0.97)
"""Range of the ground line of each person, as a fraction of the frame height."""
_HEIGHT_AT_GROUND = (0.48, 1.2)
"""Person height (fraction of the frame height) at the far ground line, and growth per unit."""
_HEIGHT_JITTER = 0.15
_SLOT_JITTER = 0.3
"""How far a person may stray from the middle of its horizontal slot, in slot widths."""


@dataclass(frozen=True, slots=True)
class PersonSpec:
    """Everything that defines one person of a video."""

    body: Proportions
    appearance: Appearance
    camera: Camera
    motion: Motion


@dataclass(frozen=True, slots=True)
class PartAnnotation:
    """A visible part: inclusive pixel box and its state."""

    box: Box
    state: str


@dataclass(frozen=True, slots=True)
class HumanAnnotation:
    """One visible person in one frame.

    Attributes:
        person: index of the person in `SynthVideo.people` (a stable track id).
        box: inclusive pixel box of the person's visible pixels.
        keypoints: float32 (17, 3) COCO-17 ``x, y, visibility`` (`VISIBLE`, `OCCLUDED` or
            `OUTSIDE`); x, y are frame coordinates even when outside the frame.
        parts: visible parts (a subset of `tps.vocabulary.PARTS`) with box and state.
        states: the state of all 10 parts, visible or not.
    """

    person: int
    box: Box
    keypoints: np.ndarray
    parts: dict[str, PartAnnotation]
    states: dict[str, str]


class SynthVideo:
    """A synthetic video; see the module docstring.

    Args:
        seed: decides everything (action, people, background, motion, camera shake).
        size: (width, height) in pixels, both even and at least `MIN_SIZE`.
        fps: frames per second (motion is defined in seconds).
        people: number of people, or None for 1..`MAX_DEFAULT_PEOPLE` drawn from the seed.
        frames: length, or None for an endless video.
        action: one of `SYNTH_ACTIONS`, or None to draw it from the seed.

    Raises:
        SynthParamError: a size, count or action the generator cannot produce.
    """

    def __init__(
        self,
        seed: int,
        size: tuple[int, int] = (320, 240),
        fps: int = 25,
        people: int | None = None,
        frames: int | None = None,
        action: str | None = None,
    ) -> None:
        width, height = size
        if width < MIN_SIZE or height < MIN_SIZE or width % 2 or height % 2:
            raise SynthParamError(
                f"size: expected even width and height of at least {MIN_SIZE}, got {width}x{height}"
            )
        if people is not None and not 1 <= people <= MAX_PEOPLE:
            raise SynthParamError(f"people: expected 1..{MAX_PEOPLE}, got {people}")
        if action is not None and action not in SPECS:
            raise SynthParamError(
                f"action: expected one of {', '.join(SYNTH_ACTIONS)}, got {action!r}"
            )
        rng = np.random.default_rng(seed)
        drawn = SYNTH_ACTIONS[int(rng.integers(len(SYNTH_ACTIONS)))]
        action = action or drawn
        count = people or int(rng.integers(1, MAX_DEFAULT_PEOPLE + 1))
        background = textured_background(rng, height + 2 * JITTER_MARGIN, width + 2 * JITTER_MARGIN)
        slots = rng.permutation(count)
        specs = [
            PersonSpec(
                body=Proportions.sample(rng),
                appearance=Appearance.sample(rng),
                camera=_place(rng, action, int(slot), count, width, height),
                motion=sample_motion(action, rng),
            )
            for slot in slots
        ]
        self._setup(seed, action, specs, background, fps, frames)

    @classmethod
    def from_people(
        cls,
        seed: int,
        action: str,
        people: Sequence[PersonSpec],
        background: np.ndarray,
        fps: int = 25,
        frames: int | None = None,
    ) -> SynthVideo:
        """A video of given people on a given background (uint8 H, W, 3), e.g. for checks.

        The background is extended by edge replication to leave room for camera shake; `seed`
        still decides the shake.
        """
        margin = ((JITTER_MARGIN, JITTER_MARGIN), (JITTER_MARGIN, JITTER_MARGIN), (0, 0))
        video = cls.__new__(cls)
        video._setup(
            seed, action, list(people), np.pad(background, margin, mode="edge"), fps, frames
        )
        return video

    def _setup(
        self,
        seed: int,
        action: str,
        people: list[PersonSpec],
        background: np.ndarray,
        fps: int,
        frames: int | None,
    ) -> None:
        if fps < 1:
            raise SynthParamError(f"fps: expected at least 1, got {fps}")
        if frames is not None and frames < 1:
            raise SynthParamError(f"frames: expected at least 1 or None, got {frames}")
        self.seed, self.action, self.fps, self.num_frames = seed, action, fps, frames
        self.people: tuple[PersonSpec, ...] = tuple(people)
        self.height = background.shape[0] - 2 * JITTER_MARGIN
        self.width = background.shape[1] - 2 * JITTER_MARGIN
        self._background = background
        self._raster = Raster(self.height, self.width)
        self._order = sorted(range(len(people)), key=lambda k: people[k].camera.ground_y)
        rng = np.random.default_rng((seed, len(people)))
        self._shake = [
            (rng.uniform(*_SHAKE_PX), rng.uniform(*_SHAKE_HZ), rng.uniform(0, 2 * math.pi))
            for _ in range(2)
        ]
        self._tremor = float(rng.uniform(*_TREMOR_PX))

    def __repr__(self) -> str:
        return (
            f"SynthVideo(seed={self.seed}, action={self.action!r}, size={self.width}x{self.height},"
            f" people={len(self.people)}, frames={self.num_frames})"
        )

    def _check(self, index: int) -> None:
        if index < 0 or (self.num_frames is not None and index >= self.num_frames):
            raise IndexError(f"frame index {index} outside 0..{self.num_frames}")

    def _shift(self, index: int) -> tuple[int, int]:
        """Camera shake of frame `index` in pixels (dx, dy): a slow wobble plus tremor."""
        t = index / self.fps
        shift = []
        for axis, (amplitude, hertz, phase) in enumerate(self._shake):
            tremor = (2.0 * unit_hash(self.seed, index, axis) - 1.0) * self._tremor
            value = amplitude * math.sin(2 * math.pi * hertz * t + phase) + tremor
            shift.append(int(round(min(max(value, -JITTER_MARGIN), JITTER_MARGIN))))
        return shift[0], shift[1]

    def _draw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple]]:
        """Draw a frame.

        Returns:
            image uint8 (H, W, 3); codes uint16 (H, W) from `Raster.draw`; code_labels uint8
            mapping each code to ``slot * LABEL_STRIDE + label`` (0 for background) with the
            shape labels of `tps.synth.body.SHAPE_LABELS`; per person slot its COCO keypoints
            xy (17, 2) and the window its shapes were drawn on (None when off-frame).
        """
        self._check(index)
        t = index / self.fps
        dx, dy = self._shift(index)
        margin = JITTER_MARGIN
        image = self._background[
            margin + dy : margin + dy + self.height, margin + dx : margin + dx + self.width
        ].copy()
        codes = np.zeros((self.height, self.width), np.uint16)
        colours, code_labels = [], [0]
        drawn: dict[int, tuple] = {}
        for slot in self._order:
            person = self.people[slot]
            joints = skeleton(person.body, pose_at(person.motion, person.body, t))
            xy, depth = person.camera.project(joints, (-dx, -dy))
            window = None
            for shape in shapes(person.body, person.appearance, person.camera, xy, depth):
                box = self._raster.draw(codes, shape, len(colours))
                colours.append(shape.colour)
                code_labels += [slot * LABEL_STRIDE + shape.label] * SHADE_LEVELS
                if box is not None:
                    window = box if window is None else _union(window, box)
            drawn[slot] = (xy[list(COCO_JOINTS)], window)
        windows = [window for _, window in drawn.values() if window is not None]
        everything = functools.reduce(_union, windows) if windows else None
        compose(image, codes, np.asarray(colours, np.float32).reshape(-1, 3), everything)
        return image, codes, np.asarray(code_labels, np.uint8), drawn

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` as uint8 (H, W, 3) RGB."""
        return self._draw(index)[0]

    def annotations(self, index: int) -> list[HumanAnnotation]:
        """The visible people of frame `index`, in `people` order."""
        return self.render(index)[1]

    def render(self, index: int) -> tuple[np.ndarray, list[HumanAnnotation]]:
        """Frame `index` and its annotations, rendered once."""
        image, codes, code_labels, drawn = self._draw(index)
        labels = code_labels[codes]
        t = index / self.fps
        humans = []
        for slot, (keypoints_xy, window) in sorted(drawn.items()):
            human = self._annotate(labels, slot, keypoints_xy, window, t)
            if human is not None:
                humans.append(human)
        return image, humans

    def _annotate(
        self,
        labels: np.ndarray,
        slot: int,
        keypoints_xy: np.ndarray,
        window: tuple[int, int, int, int] | None,
        t: float,
    ) -> HumanAnnotation | None:
        """Boxes from the visible pixels of person `slot`; None when nothing of it is visible."""
        if window is None:
            return None
        x0, x1, y0, y1 = window
        base = slot * LABEL_STRIDE
        sub = labels[y0:y1, x0:x1]
        rows, cols = np.nonzero((sub > base) & (sub < base + LABEL_STRIDE))
        if len(rows) == 0:
            return None
        own = sub[rows, cols] - base
        rows, cols = rows + y0, cols + x0
        person = self.people[slot]
        states = part_states(person.motion, person.body, t)
        parts = {}
        for part, label in PART_LABELS.items():
            mine = own == label
            if mine.any():
                parts[part] = PartAnnotation(_box(rows[mine], cols[mine]), states[part])
        return HumanAnnotation(
            person=slot,
            box=_box(rows, cols),
            keypoints=self._keypoints(labels, slot, keypoints_xy),
            parts=parts,
            states=states,
        )

    def _keypoints(self, labels: np.ndarray, slot: int, xy: np.ndarray) -> np.ndarray:
        """float32 (17, 3) x, y, visibility; occluded = the pixel shows another person."""
        keypoints = np.zeros((len(xy), 3), np.float32)
        keypoints[:, :2] = xy
        columns = np.rint(xy[:, 0]).astype(int)
        rows = np.rint(xy[:, 1]).astype(int)
        inside = (columns >= 0) & (columns < self.width) & (rows >= 0) & (rows < self.height)
        owner = np.full(len(xy), -1)
        pixel = labels[rows[inside], columns[inside]].astype(int)
        owner[inside] = np.where(pixel > 0, (pixel - 1) // LABEL_STRIDE, -1)
        covered = inside & (owner >= 0) & (owner != slot)
        keypoints[:, 2] = np.where(inside, np.where(covered, OCCLUDED, VISIBLE), OUTSIDE)
        return keypoints


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def _box(rows: np.ndarray, cols: np.ndarray) -> Box:
    """Inclusive box of pixel positions."""
    return (float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max()))


def _place(
    rng: np.random.Generator, action: str, slot: int, count: int, width: int, height: int
) -> Camera:
    """Camera of one person: nearer people stand lower in the frame and look bigger."""
    ground = rng.uniform(*_GROUND)
    grow = _HEIGHT_AT_GROUND[0] + _HEIGHT_AT_GROUND[1] * (ground - _GROUND[0])
    size = grow * rng.uniform(1 - _HEIGHT_JITTER, 1 + _HEIGHT_JITTER) * SPECS[action].height
    x = (slot + 0.5 + rng.uniform(-_SLOT_JITTER, _SLOT_JITTER)) / count * width
    return Camera(
        yaw=float(rng.uniform(*SPECS[action].yaw)),
        facing=1.0 if rng.random() < 0.5 else -1.0,
        x=float(x),
        ground_y=float(ground * height),
        scale=float(size * height),
    )
