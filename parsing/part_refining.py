"""The part refiner's geometry and its stage: patches around first guesses, boxes back out.

A patch is a square of side ``patch_scale`` x the person's box height centred on a part's first
guess (the centre of the box the part stage found), cut by `parsing.crops.crop_and_resize`. Boxes
here are the scorer's inclusive pixel boxes: a box (x1, y1, x2, y2) covers x2 - x1 + 1 pixels, so
its centre is (x1 + x2) / 2 and its width x2 - x1 + 1. The network (`models.part_refiner`) gives
each part type's centre as a fraction of the patch from its left / top edge (pixel centres of the
patch at (j + 0.5) / S, as the crop samples them) and its log width / height in patch sides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import torch

from models.detection import IMAGENET_RGB
from parsing.crops import crop_and_resize
from parsing.inputs import normalize_batch
from parsing.networks import Network
from parsing.results import PartBoxes
from tps.vocabulary import part_type

PATCH_SCALE_KEY = "patch_scale"
"""Checkpoint metadata: the patch side in person heights the refiner was trained with."""


def patch_boxes(centres_xy: np.ndarray, person_heights: np.ndarray, scale: float) -> np.ndarray:
    """(N, 4) square patch boxes of side ``scale`` x height, centred on (N, 2) points."""
    half = (np.asarray(person_heights, np.float32) * scale / 2)[:, None]
    centres = np.asarray(centres_xy, np.float32).reshape(-1, 2)
    return np.concatenate((centres - half, centres + half), axis=1)


def box_centres(boxes_xyxy: np.ndarray) -> np.ndarray:
    """(N, 2) centres of (N, 4) inclusive boxes."""
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def boxes_in_patches(boxes_xyxy: np.ndarray, patches_xyxy: np.ndarray) -> np.ndarray:
    """(N, 4) inclusive frame boxes -> their outer edges (x1, y1, x2, y2) in patch sides,
    from the patch's top-left corner (the refiner's training target)."""
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    patches = np.asarray(patches_xyxy, np.float32).reshape(-1, 4)
    side = (patches[:, 2:3] - patches[:, 0:1]).clip(min=1e-6)
    outer = boxes + np.array([-0.5, -0.5, 0.5, 0.5], np.float32)
    return (outer - np.tile(patches[:, :2], 2)) / side


def patch_edges(outputs: torch.Tensor) -> torch.Tensor:
    """(..., 4) network outputs (centre x, y, log w, log h) -> outer edges in patch sides."""
    half = outputs[..., 2:].exp() / 2
    return torch.cat((outputs[..., :2] - half, outputs[..., :2] + half), dim=-1)


def patches_to_boxes(edges: np.ndarray, patches_xyxy: np.ndarray) -> np.ndarray:
    """The inverse of `boxes_in_patches`: (N, 4) edges in patch sides -> inclusive frame boxes."""
    patches = np.asarray(patches_xyxy, np.float32).reshape(-1, 4)
    side = patches[:, 2:3] - patches[:, 0:1]
    outer = np.asarray(edges, np.float32) * side + np.tile(patches[:, :2], 2)
    return outer - np.array([-0.5, -0.5, 0.5, 0.5], np.float32)


def at_least_one_pixel(boxes_xyxy: np.ndarray) -> np.ndarray:
    """Inclusive boxes widened about their centres to x2 >= x1, y2 >= y1 (one pixel): a refiner
    may answer a size under a pixel, which no inclusive box has."""
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    halves = np.maximum(boxes[:, 2:] - boxes[:, :2], 0) / 2
    return np.concatenate((centres - halves, centres + halves), axis=1)


def cut_patches(frame_chw: torch.Tensor, patches_xyxy: np.ndarray, size: int) -> np.ndarray:
    """(N, 3, size, size) normalised network input for the patches of one (3, H, W) 0..255 frame."""
    return normalize_batch(crop_and_resize(frame_chw, patches_xyxy, (size, size)), IMAGENET_RGB)


class PartRefinerStage:
    """Runs the refiner on every found part of a type it knows, keeping each part's score."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.types: list[str] = list(network.classes)
        self.scale = float(json.loads(network.metadata[PATCH_SCALE_KEY]))
        self.size = int(network.input_shape[-1])

    def __call__(
        self, frame_chw: torch.Tensor, person_boxes: np.ndarray, found: Sequence[PartBoxes]
    ) -> list[PartBoxes]:
        """`found` with the boxes of refinable parts replaced; `person_boxes` (P, 4) in frame
        pixels, one per entry of `found`."""
        jobs = [
            (person, name, self.types.index(part_type(name)))
            for person, parts in enumerate(found)
            for name in parts
            if part_type(name) in self.types
        ]
        if not jobs:
            return list(found)
        guesses = np.stack([found[person][name][0] for person, name, _ in jobs])
        heights = np.array([person_boxes[p][3] - person_boxes[p][1] for p, _, _ in jobs])
        patches = patch_boxes(box_centres(guesses), heights, self.scale)
        outputs = next(iter(self.network.run(cut_patches(frame_chw, patches, self.size)).values()))
        kinds = np.array([kind for _, _, kind in jobs])
        chosen = torch.from_numpy(outputs[np.arange(len(jobs)), kinds])  # N, 4
        boxes = at_least_one_pixel(patches_to_boxes(patch_edges(chosen).numpy(), patches))
        refined = [dict(parts) for parts in found]
        for (person, name, _), box in zip(jobs, boxes, strict=True):
            refined[person][name] = (box, found[person][name][1])
        return refined
