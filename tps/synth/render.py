"""A small numpy rasteriser: filled capsules, ellipses and convex polygons, plus backgrounds.

Each shape is evaluated only on its bounding-box window, against pixel-centre grids computed once
per frame size, and writes a code into a code map (the last drawn wins), so the code map says
exactly which shape is visible at every pixel; one pass then turns codes into shaded colours.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from tps.synth.body import CAPSULE, ELLIPSE, Shape

SHADE = 0.35
"""Darkening towards a shape's rim (0 = flat colour), which makes overlapping limbs separable."""
SHADE_LEVELS = 8
"""Shading steps per shape."""
_EPS = 1e-6

_NOISE_CELLS = (6, 24)
"""Range of the smooth background noise's cell size in pixels."""
_BASE_GREY = (40.0, 210.0)
_BASE_TINT = 45.0
"""Wall and floor colours: a grey level plus a tint per channel."""
_LUMA_NOISE = (6.0, 30.0)
_CHROMA_NOISE = (0.0, 8.0)
"""Ranges of the smooth noise's standard deviation: shared by the channels, and per channel."""
_RECTANGLES = (3, 9)
_FINE_NOISE = 6.0
"""Standard deviation of the per-pixel background noise, in grey levels."""


class Raster:
    """Draws shapes as codes into a uint16 code map of one fixed size, then colours it.

    Shape k of a frame writes codes ``1 + k * SHADE_LEVELS + band`` where ``band`` grows towards
    the shape's rim; code 0 is background. `compose` turns codes into shaded colours in one pass,
    which is much cheaper than writing RGB per shape.

    Args:
        height, width: frame size in pixels.
    """

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._columns = np.arange(width, dtype=np.float32)
        self._rows = np.arange(height, dtype=np.float32)

    def _window(
        self, x_low: float, x_high: float, y_low: float, y_high: float
    ) -> tuple[int, int, int, int] | None:
        """Integer pixel window [x0, x1) x [y0, y1) covering the range, clipped; None if empty."""
        x0, x1 = max(math.floor(x_low), 0), min(math.ceil(x_high) + 1, self.width)
        y0, y1 = max(math.floor(y_low), 0), min(math.ceil(y_high) + 1, self.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return x0, x1, y0, y1

    def draw(self, codes: np.ndarray, shape: Shape, index: int) -> tuple[int, int, int, int] | None:
        """Fill `shape` as the frame's `index`-th shape into `codes` (uint16 H, W).

        Returns:
            The window (x0, x1, y0, y1) the shape was evaluated on, or None when off-frame.
        """
        if shape.kind == CAPSULE:
            found = self._capsule(*shape.geometry)
        elif shape.kind == ELLIPSE:
            found = self._ellipse(*shape.geometry)
        else:
            found = self._polygon(shape.geometry)
        if found is None:
            return None
        window, rim = found
        x0, x1, y0, y1 = window
        band = np.minimum(rim * SHADE_LEVELS, SHADE_LEVELS - 1).astype(np.uint16)
        band += 1 + index * SHADE_LEVELS
        np.copyto(codes[y0:y1, x0:x1], band, where=rim <= 1.0)
        return window

    def _capsule(
        self, ax: float, ay: float, bx: float, by: float, radius_a: float, radius_b: float
    ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Rim value (<= 1 inside) of the linearly tapering capsule around segment a-b."""
        window = self._window(
            min(ax - radius_a, bx - radius_b),
            max(ax + radius_a, bx + radius_b),
            min(ay - radius_a, by - radius_b),
            max(ay + radius_a, by + radius_b),
        )
        if window is None:
            return None
        x0, x1, y0, y1 = window
        px = self._columns[x0:x1] - ax
        py = self._rows[y0:y1] - ay
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy + _EPS
        raw = (py * (dy / length2))[:, None] + px * (dx / length2)
        along = np.minimum(np.maximum(raw, 0.0), 1.0)
        # squared distance to the nearest point a + along * (b - a)
        distance2 = (py * py)[:, None] + px * px + length2 * along * (along - 2.0 * raw)
        radius = radius_a + along * (radius_b - radius_a)
        return window, distance2 / (radius * radius + _EPS)

    def _ellipse(
        self, cx: float, cy: float, rx: float, ry: float, angle: float
    ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Rim value of the ellipse with semi-axis `rx` along `angle` and `ry` across it."""
        cos_a, sin_a = math.cos(angle), math.sin(angle)
        half_w = math.hypot(rx * cos_a, ry * sin_a)
        half_h = math.hypot(rx * sin_a, ry * cos_a)
        window = self._window(cx - half_w, cx + half_w, cy - half_h, cy + half_h)
        if window is None:
            return None
        x0, x1, y0, y1 = window
        px = self._columns[x0:x1] - cx
        py = self._rows[y0:y1] - cy
        along = (py * (sin_a / rx))[:, None] + px * (cos_a / rx)
        across = (py * (cos_a / ry))[:, None] - px * (sin_a / ry)
        return window, along * along + across * across

    def _polygon(
        self, geometry: tuple[float, ...]
    ) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Rim value of a convex polygon: 0 inside (flat shading), 2 outside."""
        xs, ys = geometry[0::2], geometry[1::2]
        window = self._window(min(xs), max(xs), min(ys), max(ys))
        if window is None:
            return None
        x0, x1, y0, y1 = window
        px = self._columns[x0:x1]
        py = self._rows[y0:y1][:, None]
        positive = np.ones((y1 - y0, x1 - x0), dtype=bool)
        negative = positive.copy()
        count = len(xs)
        for i in range(count):
            xa, ya, xb, yb = xs[i], ys[i], xs[(i + 1) % count], ys[(i + 1) % count]
            cross = (py - ya) * (xb - xa) - (px - xa) * (yb - ya)
            positive &= cross >= 0
            negative &= cross <= 0
        return window, np.where(positive | negative, np.float32(0.0), np.float32(2.0))


def compose(
    background: np.ndarray,
    codes: np.ndarray,
    colours: np.ndarray,
    window: tuple[int, int, int, int] | None,
) -> np.ndarray:
    """Colour a code map over a background.

    Args:
        background: uint8 (H, W, 3) RGB, modified in place and returned.
        codes: uint16 (H, W) from `Raster.draw`.
        colours: float (K, 3) RGB of the frame's K shapes, in drawing order.
        window: (x0, x1, y0, y1) holding every nonzero code, or None when there is none.

    Returns:
        `background` with every shape pixel replaced by its colour, darkened towards the rim.
    """
    if window is None:
        return background
    light = 1.0 - SHADE * (np.arange(SHADE_LEVELS) + 0.5) / SHADE_LEVELS
    palette = np.zeros((1 + len(colours) * SHADE_LEVELS, 3), np.uint8)
    palette[1:] = (colours[:, None, :] * light[None, :, None]).reshape(-1, 3)
    x0, x1, y0, y1 = window
    region = codes[y0:y1, x0:x1]
    np.copyto(background[y0:y1, x0:x1], palette[region], where=(region > 0)[:, :, None])
    return background


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random room: wall and floor gradients, smooth noise, rectangles, fine noise.

    Returns:
        uint8 (height, width, 3) RGB.
    """
    horizon = int(height * rng.uniform(0.3, 0.65))
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    wall_top, wall_bottom, floor_far, floor_near = (
        rng.uniform(*_BASE_GREY) + rng.uniform(-_BASE_TINT, _BASE_TINT, size=3) for _ in range(4)
    )
    wall = wall_top + (wall_bottom - wall_top) * rows / max(horizon, 1)
    floor = floor_far + (floor_near - floor_far) * (rows - horizon) / max(height - horizon, 1)
    image = np.where(rows < horizon, wall, floor) * np.ones((1, width, 1), np.float32)
    cell = int(rng.integers(*_NOISE_CELLS))
    grid = (height // cell + 2, width // cell + 2)
    coarse = rng.normal(0.0, rng.uniform(*_LUMA_NOISE), size=(*grid, 1)) + rng.normal(
        0.0, rng.uniform(*_CHROMA_NOISE), size=(*grid, 3)
    )
    image += ndimage.zoom(coarse, (cell, cell, 1), order=1)[:height, :width]
    for _ in range(int(rng.integers(*_RECTANGLES))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, max(horizon, 1)))
        w, h = (
            int(rng.integers(width // 20, width // 3)),
            int(rng.integers(height // 20, height // 2)),
        )
        image[y0 : y0 + h, x0 : x0 + w] = rng.uniform(20, 235, size=3)
    image += rng.normal(0.0, _FINE_NOISE, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def plain_background(height: int, width: int, rgb: tuple[int, int, int]) -> np.ndarray:
    """A uniform background, uint8 (height, width, 3); useful to check drawn pixels exactly."""
    return np.broadcast_to(np.asarray(rgb, np.uint8), (height, width, 3)).copy()
