"""Drawing part-level parses on frames: person boxes, skeletons, part boxes with their states.

Both the synthetic world's preview (ground truth) and the streaming overlay (predictions) draw
through here, so a person compares like with like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

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
"""Label text height in pixels on the reference frame (`REFERENCE_SIDE`), and the least."""
REFERENCE_SIDE = 240
"""The shorter frame side the sizes were tuned on (320x240); other frames scale from it."""
FONT_PER_SIDE = 1 / 32
"""Label text height per pixel of the frame's shorter side (about 34 px at 1080p)."""
LINE_PER_SIDE = 1 / 360
"""Line width per pixel of the shorter side (1 px at 240p, 2 at 720p, 3 at 1080p)."""
DOT_PER_SIDE = 1 / 240
"""Keypoint dot radius per pixel of the shorter side (1 px at 240p, 4-5 at 1080p)."""
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


@dataclass(frozen=True)
class Style:
    """Sizes in pixels for one frame size: what reads at 320x240 reads at 1080p too.

    Attributes:
        line: width of boxes and limbs.
        dot: radius of keypoint dots.
        font: label text size.
        pad: margin around label text (its black background).
    """

    line: int
    dot: int
    font: int
    pad: int

    @classmethod
    def for_frame(cls, width: int, height: int) -> Style:
        """The style of a `width` x `height` frame, scaled from its shorter side."""
        side = min(width, height)
        font = max(FONT_SIZE, round(side * FONT_PER_SIDE))
        return cls(
            line=max(1, round(side * LINE_PER_SIDE)),
            dot=max(1, round(side * DOT_PER_SIDE)),
            font=font,
            pad=max(1, font // 10),
        )


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour, style: Style
) -> None:
    font = _font(style.font)
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    pad = style.pad
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=TEXT_BACKGROUND)
    draw.text(xy, text, fill=colour, font=font)


def draw_figures(frame_rgb: np.ndarray, figures: Sequence[Figure], caption: str = "") -> None:
    """Draw `figures` and a caption (top-left) onto an (H, W, 3) uint8 RGB frame, in place.

    Line widths, dot sizes and text scale with the frame's shorter side (`Style.for_frame`).
    """
    height, width = frame_rgb.shape[:2]
    style = Style.for_frame(width, height)
    image = Image.fromarray(frame_rgb)
    draw = ImageDraw.Draw(image)
    for figure in figures:
        draw.rectangle(figure.box, outline=PERSON_COLOUR, width=style.line)
        points = figure.keypoints
        if len(points):
            for a, b in SKELETON:
                if points[a][2] >= MIN_KEYPOINT_SCORE and points[b][2] >= MIN_KEYPOINT_SCORE:
                    draw.line(
                        (*points[a][:2], *points[b][:2]), fill=SKELETON_COLOUR, width=style.line
                    )
            for x, y, score in points:
                if score >= MIN_KEYPOINT_SCORE:
                    r = style.dot
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=SKELETON_COLOUR)
        for name, (box, state) in figure.parts.items():
            colour = PART_TYPE_COLOURS[part_type(name)]
            draw.rectangle(box, outline=colour, width=style.line)
            if state:
                inset = style.line + style.pad
                _text(draw, (box[0] + inset, box[1] + inset), state, colour, style)
        if figure.label:
            top = max(figure.box[1] - style.font - 2 * style.pad - style.line, 0)
            _text(draw, (figure.box[0], top), figure.label, PERSON_COLOUR, style)
    if caption:
        margin = 2 * style.pad
        _text(draw, (margin, margin), caption, PERSON_COLOUR, style)
    np.copyto(frame_rgb, np.asarray(image))


def save_png(image_rgb: np.ndarray, path) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG."""
    Image.fromarray(image_rgb).save(path, format="PNG")
