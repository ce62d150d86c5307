"""Pre/post-processing for the pretrained MoveNet ONNX models in ``weights/real/`` (numpy only).

The models come from ``make real-weights`` (``models/real_weights.py``; provenance, checksums and
licences in the ``real`` section of ``weights/manifest.json``). All three take one RGB image in
**NHWC int32** with values 0..255 (no mean/std: the graph normalises internally) and return
coordinates **normalised to the network input**, in (y, x) order, keypoints in **COCO-17 order**
(``COCO17`` below).

- ``movenet_multipose_lightning.onnx``: input ``input`` [1, H, W, 3] int32, H and W any multiples
  of 32 (256 on the long side is what it was trained for); output ``output_0`` [1, 6, 56] float32:
  per candidate 17 x (y, x, score), then ymin, xmin, ymax, xmax, box score.
- ``movenet_lightning.onnx``: input ``input:0`` [1, 192, 192, 3] int32; output ``Identity:0``
  [1, 1, 17, 3] float32: 17 x (y, x, score).
- ``movenet_thunder.onnx``: input ``input:0`` [1, 256, 256, 3] int32; output ``Identity:0``
  [1, 1, 17, 3] float32: 17 x (y, x, score).

MultiPose always returns 6 candidates; keep those whose box score passes a threshold (0.2-0.3 is
usual). Single-pose models expect one person roughly centred in a square crop: feed a square box
around a detected person (``square_box``) and map points back with the same box.

Coordinates: the frame convention of ``parsing/crops.py`` (pixel centres at integer coordinates,
a box is a continuous rectangle). ``sample_box`` resamples any box of the frame (zeros outside)
to the network input, so letterboxing is the same operation with a box that covers the frame and
is padded to the input's aspect (``letterbox_box``). A normalised network point (y, x) maps back to
frame pixels as ``x1 + x * (x2 - x1)``, ``y1 + y * (y2 - y1)`` (``to_frame``; input pixel j's
centre is x = (j + 0.5) / w).

Measured on the real photographs in ``shared/real`` by ``bench/real_models_eval.py`` (commit
5f366ed; ``python run.py eval-pose`` now measures the stages as the pipeline runs them, figures in
docs/RESULTS.md); 2-core CPU, onnxruntime 1.32; recall = annotated people found at IoU 0.5,
PCK@0.2 of the box diagonal:

- MultiPose, long side 256 (25 ms): recall OCHuman 2/5, CrowdPose 4/4, AIC 8/9; PCK .45/1.0/.81
- MultiPose, long side 384 (66 ms): recall 3/5, 4/4, 9/9; PCK 0.60 / 0.97 / 0.93
- Lightning top-down on annotated boxes (10 ms a person): PCK 0.80 / 0.92 / 0.93
- Thunder top-down on annotated boxes (27 ms a person): PCK 0.77 / 0.97 / 0.93

(OCHuman is the heavily occluded set; only 5 + 4 + 9 people in all, so these are smoke numbers.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.hrnet import COCO_FLIP_PAIRS, flip_indices

if TYPE_CHECKING:
    from parsing.networks import Runner

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO17_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

MULTIPOSE = "movenet_multipose_lightning"
LIGHTNING = "movenet_lightning"
THUNDER = "movenet_thunder"
SINGLE_INPUT = {LIGHTNING: (192, 192), THUNDER: (256, 256)}
FLIP_ORDER = flip_indices(len(COCO17), COCO_FLIP_PAIRS)
"""Keypoint order of a mirrored image's points: left and right swapped."""


def sample_box(frame_rgb: np.ndarray, box_xyxy, out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinearly resample box (x1, y1, x2, y2) of an (H, W, 3) frame to (h, w, 3) float32.

    Output pixel (i, j) samples the frame at x = x1 + (j + 0.5) (x2 - x1) / w, likewise y, where
    frame pixel centres sit at integer coordinates (as in ``parsing/crops.py``); outside is 0.
    """
    height, width = frame_rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    out_h, out_w = out_hw
    xs = x1 + (np.arange(out_w) + 0.5) * (x2 - x1) / out_w
    ys = y1 + (np.arange(out_h) + 0.5) * (y2 - y1) / out_h
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = (xs - x0).astype(np.float32), (ys - y0).astype(np.float32)
    src = frame_rgb.astype(np.float32, copy=False)
    out = np.zeros((out_h, out_w, frame_rgb.shape[2]), np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        yy = y0 + dy
        vy = (yy >= 0) & (yy < height)
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xx = x0 + dx
            vx = (xx >= 0) & (xx < width)
            weight = (wy * vy)[:, None] * (wx * vx)[None, :]
            vals = src[np.clip(yy, 0, height - 1)][:, np.clip(xx, 0, width - 1)]
            out += weight[..., None] * vals
    return out


def to_input(crop_hw3: np.ndarray) -> np.ndarray:
    """(h, w, 3) float 0..255 -> the models' [1, h, w, 3] int32 input."""
    return np.clip(np.rint(crop_hw3), 0, 255).astype(np.int32)[None]


def multipose_input_hw(frame_hw: tuple[int, int], long_side: int = 256) -> tuple[int, int]:
    """MultiPose input (h, w): long side ``long_side``, both multiples of 32, aspect kept."""
    height, width = frame_hw
    scale = long_side / max(height, width)
    return (
        max(32, int(round(height * scale / 32)) * 32),
        max(32, int(round(width * scale / 32)) * 32),
    )


def letterbox_box(frame_hw: tuple[int, int], in_hw: tuple[int, int]) -> np.ndarray:
    """The frame box (x1, y1, x2, y2), padded equally on both sides to the aspect of ``in_hw``."""
    height, width = frame_hw
    in_h, in_w = in_hw
    scale = max(height / in_h, width / in_w)
    box_w, box_h = in_w * scale, in_h * scale
    cx, cy = (width - 1) / 2, (height - 1) / 2  # the frame spans [-0.5, W - 0.5] x [-0.5, H - 0.5]
    return np.array([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], np.float32)


def square_box(box_xyxy, pad: float = 1.25) -> np.ndarray:
    """Square crop box around a person box (side ``pad`` x its longer side), for single pose."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    side = max(x2 - x1, y2 - y1) * pad
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def to_frame(yx_norm: np.ndarray, box_xyxy) -> np.ndarray:
    """Map normalised (..., 2) (y, x) network points into frame (..., 2) (x, y) pixels."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    x = x1 + yx_norm[..., 1] * (x2 - x1)
    y = y1 + yx_norm[..., 0] * (y2 - y1)
    return np.stack([x, y], axis=-1).astype(np.float32)


@dataclass
class Poses:
    """Frame-pixel results: boxes (N, 4) x1 y1 x2 y2, scores (N,), keypoints (N, 17, 3) x y s."""

    boxes: np.ndarray
    scores: np.ndarray
    keypoints: np.ndarray


def decode_multipose(output: np.ndarray, box_xyxy, score_threshold: float = 0.25) -> Poses:
    """MultiPose [1, 6, 56] output -> Poses in frame pixels above the threshold, best first."""
    rows = np.asarray(output, np.float32).reshape(-1, 56)
    rows = rows[rows[:, 55] >= score_threshold]
    rows = rows[np.argsort(-rows[:, 55], kind="stable")]
    kpts = rows[:, :51].reshape(-1, 17, 3)
    xy = to_frame(kpts[..., :2], box_xyxy)
    keypoints = np.concatenate([xy, kpts[..., 2:3]], axis=-1)
    corners = to_frame(rows[:, 51:55].reshape(-1, 2, 2), box_xyxy).reshape(-1, 4)  # x1, y1, x2, y2
    return Poses(boxes=corners, scores=rows[:, 55].copy(), keypoints=keypoints.astype(np.float32))


def decode_single(output: np.ndarray, box_xyxy) -> np.ndarray:
    """Single-pose [1, 1, 17, 3] (or (17, 3)) output -> (17, 3) x, y, score in frame pixels."""
    kpts = np.asarray(output, np.float32).reshape(17, 3)
    return np.concatenate([to_frame(kpts[:, :2], box_xyxy), kpts[:, 2:3]], axis=-1)


def real_weights(weights_dir: Path | str = "weights") -> dict:
    """The ``real`` section of ``weights/manifest.json`` (``networks``: name -> entry)."""
    manifest = json.loads((Path(weights_dir) / "manifest.json").read_text())
    return manifest["real"]


def _only_output(outputs: dict[str, np.ndarray]) -> np.ndarray:
    (output,) = outputs.values()
    return output


class MultiPose:
    """MoveNet MultiPose Lightning: whole frames in, up to 6 people (box + COCO-17) each out.

    Args:
        run: the network's `Runner` (an engine's, or the pool's micro-batched one): int32
            [N, h, w, 3] in, ``{name: [N, 6, 56]}`` out.
        long_side: the input's long side (a multiple of 32; trained at 256).
    """

    def __init__(self, run: Runner, long_side: int = 256) -> None:
        self.run, self.long_side = run, long_side

    def sample(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame's network input (h, w, 3) int32 and the letterbox box it samples."""
        in_hw = multipose_input_hw(frame_rgb.shape[:2], self.long_side)
        box = letterbox_box(frame_rgb.shape[:2], in_hw)
        return to_input(sample_box(frame_rgb, box, in_hw))[0], box

    def __call__(
        self, frames_rgb: Sequence[np.ndarray], score_threshold: float = 0.25
    ) -> list[Poses]:
        """Poses of (H, W, 3) RGB frames; frames of one size share a network call."""
        samples = [self.sample(frame_rgb) for frame_rgb in frames_rgb]
        poses: list[Poses | None] = [None] * len(samples)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, (x, _) in enumerate(samples):
            by_shape.setdefault(x.shape, []).append(index)
        for indices in by_shape.values():
            outputs = _only_output(self.run(np.stack([samples[i][0] for i in indices])))
            for index, output in zip(indices, outputs, strict=True):
                poses[index] = decode_multipose(output, samples[index][1], score_threshold)
        return poses  # type: ignore[return-value]  # every index was filled above


class SinglePose:
    """MoveNet Lightning / Thunder, top-down: one (17, 3) x, y, score per person box.

    Args:
        run: the network's `Runner`: int32 [N, h, w, 3] in, ``{name: [N, 1, 17, 3]}`` out.
        input_hw: the network's square input (192 for Lightning, 256 for Thunder).
        pad: each crop's side is ``pad`` x the person box's longer side (`square_box`).
        flip_test: also run the mirrored crops and average the unmirrored points with them.
    """

    def __init__(
        self, run: Runner, input_hw: tuple[int, int], pad: float = 1.25, flip_test: bool = False
    ) -> None:
        self.run, self.input_hw, self.pad, self.flip_test = run, input_hw, pad, flip_test

    def batch(
        self, frames_rgb: Sequence[np.ndarray], person_boxes_xyxy: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Keypoints (N_i, 17, 3) of every frame's (N_i, 4) person boxes, in one network call."""
        boxes = [np.asarray(b, np.float32).reshape(-1, 4) for b in person_boxes_xyxy]
        crop_boxes = [square_box(box, self.pad) for frame_boxes in boxes for box in frame_boxes]
        owners = [i for i, frame_boxes in enumerate(boxes) for _ in frame_boxes]
        if not crop_boxes:
            return [np.zeros((0, 17, 3), np.float32) for _ in boxes]
        x = np.concatenate(
            [
                to_input(sample_box(frames_rgb[owner], box, self.input_hw))
                for owner, box in zip(owners, crop_boxes, strict=True)
            ]
        )  # N,h,w,3
        count = len(x)
        if self.flip_test:
            x = np.concatenate((x, x[:, :, ::-1]))  # 2N,h,w,3: originals, mirrored
        yxs = _only_output(self.run(np.ascontiguousarray(x))).reshape(-1, 17, 3)  # (2)N,17,3
        if self.flip_test:
            mirrored = yxs[count:][:, FLIP_ORDER]
            mirrored[..., 1] = 1 - mirrored[..., 1]
            yxs = (yxs[:count] + mirrored) / 2
        keypoints = np.stack(
            [decode_single(yx, box) for yx, box in zip(yxs, crop_boxes, strict=True)]
        )
        owner_of = np.array(owners)
        return [keypoints[owner_of == index] for index in range(len(boxes))]

    def __call__(self, frame_rgb: np.ndarray, person_boxes_xyxy) -> np.ndarray:
        """(N, 17, 3) keypoints of one frame's (N, 4) person boxes."""
        return self.batch([frame_rgb], [person_boxes_xyxy])[0]


ROLES = {MULTIPOSE: "person", LIGHTNING: "pose", THUNDER: "pose"}
"""The parser stage each shipped real network serves."""
MANIFEST = "manifest.json"
DEFAULT_WEIGHTS_DIR = Path("weights")


class RealModelError(Exception):
    """An ONNX file is not one of the real networks a manifest describes, or does not match it."""


@dataclass(frozen=True)
class RealNetwork:
    """A shipped real network, as the ``real`` section of a weights manifest describes it.

    Attributes:
        name: the manifest name (``MULTIPOSE``, ``LIGHTNING``, ``THUNDER``).
        path: its ONNX file.
        entry: the manifest entry (file, sha256, licence, origin, inputs, outputs, ...).
    """

    name: str
    path: Path
    entry: dict

    @property
    def role(self) -> str:
        """The parser stage it serves: ``person`` or ``pose``."""
        return ROLES[self.name]

    @property
    def input_hw(self) -> tuple[int, int]:
        """(h, w) of its input; (0, 0) where any multiple of 32 is taken (MultiPose)."""
        _, height, width, _ = self.entry["inputs"][0]["shape"]
        return (height, width) if isinstance(height, int) else (0, 0)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def real_zoo(weights_dir: Path | str = DEFAULT_WEIGHTS_DIR) -> list[RealNetwork]:
    """Every real network a weights folder's manifest describes ([] without a ``real`` section)."""
    manifest = Path(weights_dir) / MANIFEST
    if not manifest.is_file():
        return []
    real = json.loads(manifest.read_text()).get("real", {})
    return [
        RealNetwork(name, Path(weights_dir) / entry["file"], entry)
        for name, entry in real.get("networks", {}).items()
        if name in ROLES
    ]


def find_real(path: Path) -> RealNetwork:
    """The real network whose file this is, matched by sha256 in the manifest beside it.

    The manifest is looked for in the file's folder and the two above it (``weights/real/x.onnx``
    is described by ``weights/manifest.json``), then in ``weights/``.

    Raises:
        RealModelError: the file is missing, or no manifest there describes a file with its bytes.
    """
    if not path.is_file():
        raise RealModelError(f"{path}: no such ONNX file (make real-weights converts them)")
    digest = sha256_of(path)
    folders = [path.parent, *path.parent.parents][:3] + [DEFAULT_WEIGHTS_DIR]
    for folder in folders:
        for network in real_zoo(folder):
            if network.entry.get("sha256") == digest:
                return dataclasses.replace(network, path=path)
    raise RealModelError(
        f"{path}: not a real network of any manifest's real section (sha256 {digest[:12]}...;"
        f" known: {', '.join(ROLES)})"
    )


def real_path(name: str, weights_dir: Path | str = "weights") -> Path:
    """The ONNX file of a shipped real model (``MULTIPOSE``, ``LIGHTNING``, ``THUNDER``)."""
    return Path(weights_dir) / real_weights(weights_dir)["networks"][name]["file"]


def open_real(
    name: str, weights_dir: Path | str = "weights", threads: int = 0, **kwargs: Any
) -> MultiPose | SinglePose:
    """A shipped real model by manifest name on ONNX Runtime (CPU), for benches and tests.

    The pipeline loads the same files through `parsing.networks.load_network` instead.
    """
    from engines import create_engine

    path = real_path(name, weights_dir)
    engine = create_engine(
        "onnxruntime", path, providers=["CPUExecutionProvider"], intra_op_threads=threads
    )
    if name == MULTIPOSE:
        return MultiPose(engine.run, **kwargs)
    return SinglePose(engine.run, SINGLE_INPUT[name], **kwargs)
