"""A contact sheet for checking synthetic ground truth by eye.

Each row is one video, each tile one annotated frame drawn through `tps.drawing` (the same drawing
the streaming overlay uses for predictions): person boxes with track ids, COCO skeletons, part
boxes with their states, and the action and frame key as caption.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tps.drawing import Figure, draw_figures, save_png
from tps.synth.video import OUTSIDE, HumanAnnotation
from tps.vocabulary import frame_key

Shown = tuple[int, np.ndarray, list[HumanAnnotation]]
"""An annotated frame: 0-based index, uint8 (H, W, 3) RGB image, its people."""

FRAMES_PER_VIDEO = 4
_GAP = 2
"""Pixels between tiles."""


def _figure(human: HumanAnnotation) -> Figure:
    """A ground-truth person as a drawable figure; keypoints outside the frame are hidden."""
    return Figure(
        box=human.box,
        keypoints=[(float(x), float(y), float(v != OUTSIDE)) for x, y, v in human.keypoints],
        parts={name: (part.box, part.state) for name, part in human.parts.items()},
        label=f"P{human.person}",
    )


def write_preview(
    path: str | Path,
    videos: Sequence[tuple[str, str, Sequence[Shown]]],
    frames_per_video: int = FRAMES_PER_VIDEO,
) -> None:
    """Write a contact sheet PNG: one row per video, `frames_per_video` evenly spaced frames.

    Args:
        path: PNG file to write.
        videos: (name, action, annotated frames) per video; all frames of one size.

    Raises:
        ValueError: no videos or a video without frames.
    """
    if not videos or not all(shown for _, _, shown in videos):
        raise ValueError("expected at least one video, each with at least one annotated frame")
    rows = []
    for name, action, shown in videos:
        picks = np.unique(np.linspace(0, len(shown) - 1, frames_per_video).round().astype(int))
        tiles = []
        for pick in picks:
            index, image, humans = shown[int(pick)]
            tile = image.copy()
            caption = f"{name} {action} {frame_key(index)}"
            draw_figures(tile, [_figure(human) for human in humans], caption=caption)
            tiles.append(np.pad(tile, ((0, _GAP), (0, _GAP), (0, 0))))
        tiles += [np.zeros_like(tiles[0])] * (frames_per_video - len(tiles))
        rows.append(np.concatenate(tiles, axis=1))
    save_png(np.concatenate(rows, axis=0), path)
