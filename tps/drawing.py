"""Drawing part-level parses on frames: person boxes, skeletons, part boxes with their states.

Both the synthetic world's preview (ground truth) and the streaming overlay (predictions) draw
through here, so a person compares like with like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tps.vocabulary import part_type

Box = tuple[float, float, float, float]

SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip
"""COCO-17 limbs as keypoint index pairs."""

PART_TYPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "head": (255, 220, 0),
    "hand": (255, 80, 200),
    "arm": (255, 120, 0),
    "hip": (0, 200, 255),
    "leg": (60, 220, 60),
    "foot": (170, 110, 255),
}
PERSON_COLOUR = (255, 255, 255)
SKELETON_COLOUR = (0, 255, 160)
TEXT_BACKGROUND = (0, 0, 0)
FONT_SIZE = 10
MIN_KEYPOINT_SCORE = 0.3


@dataclass(frozen=True)
class Figure:
    """One person to draw.

    Attributes:
        box: person box (x1, y1, x2, y2) in frame pixels.
        keypoints: 17 (x, y, score) in frame pixels, or empty.
        parts: part name -> (box, state or None).
        label: text above the person box (e.g. a track id), or empty.
    """

    box: Box
    keypoints: Sequence[tuple[float, float, float]] = ()
    parts: Mapping[str, tuple[Box, str | None]] = field(default_factory=dict)
    label: str = ""


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour) -> None:
    font = ImageFont.load_default(FONT_SIZE)
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=TEXT_BACKGROUND)
    draw.text(xy, text, fill=colour, font=font)


def draw_figures(frame_rgb: np.ndarray, figures: Sequence[Figure], caption: str = "") -> None:
    """Draw `figures` and a caption (top-left) onto an (H, W, 3) uint8 RGB frame, in place."""
    image = Image.fromarray(frame_rgb)
    draw = ImageDraw.Draw(image)
    for figure in figures:
        draw.rectangle(figure.box, outline=PERSON_COLOUR, width=1)
        points = figure.keypoints
        if len(points):
            for a, b in SKELETON:
                if points[a][2] >= MIN_KEYPOINT_SCORE and points[b][2] >= MIN_KEYPOINT_SCORE:
                    draw.line((*points[a][:2], *points[b][:2]), fill=SKELETON_COLOUR, width=1)
        for name, (box, state) in figure.parts.items():
            colour = PART_TYPE_COLOURS[part_type(name)]
            draw.rectangle(box, outline=colour, width=1)
            if state:
                _text(draw, (box[0] + 1, box[1] + 1), state, colour)
        if figure.label:
            _text(draw, (figure.box[0], max(figure.box[1] - FONT_SIZE - 2, 0)), figure.label,
                  PERSON_COLOUR)  # fmt: skip
    if caption:
        _text(draw, (2, 2), caption, PERSON_COLOUR)
    np.copyto(frame_rgb, np.asarray(image))


def save_png(image_rgb: np.ndarray, path) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG."""
    Image.fromarray(image_rgb).save(path, format="PNG")
