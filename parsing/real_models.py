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

Measured on the real photographs in ``shared/real`` (``python -m bench.real_models_eval``; 2-core
CPU, onnxruntime 1.32; recall = annotated people found at IoU 0.5, PCK@0.2 of the box diagonal):

- MultiPose, long side 256 (25 ms): recall OCHuman 2/5, CrowdPose 4/4, AIC 8/9; PCK .45/1.0/.81
- MultiPose, long side 384 (66 ms): recall 3/5, 4/4, 9/9; PCK 0.60 / 0.97 / 0.93
- Lightning top-down on annotated boxes (10 ms a person): PCK 0.80 / 0.92 / 0.93
- Thunder top-down on annotated boxes (27 ms a person): PCK 0.77 / 0.97 / 0.93

(OCHuman is the heavily occluded set; only 5 + 4 + 9 people in all, so these are smoke numbers.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """Single-pose [1, 1, 17, 3] output -> (17, 3) x, y, score in frame pixels."""
    kpts = np.asarray(output, np.float32).reshape(17, 3)
    return np.concatenate([to_frame(kpts[:, :2], box_xyxy), kpts[:, 2:3]], axis=-1)


def real_weights(weights_dir: Path | str = "weights") -> dict:
    """The ``real`` section of ``weights/manifest.json`` (``networks``: name -> entry)."""
    manifest = json.loads((Path(weights_dir) / "manifest.json").read_text())
    return manifest["real"]


def _session(path: Path | str, threads: int | None):
    import onnxruntime as ort  # the only non-numpy dependency, imported when a model is opened

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class MultiPose:
    """MoveNet MultiPose Lightning: a whole frame in, up to 6 people (box + COCO-17) out."""

    def __init__(self, path: Path | str, long_side: int = 256, threads: int | None = None) -> None:
        self.session = _session(path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.long_side = long_side

    def __call__(self, frame_rgb: np.ndarray, score_threshold: float = 0.25) -> Poses:
        in_hw = multipose_input_hw(frame_rgb.shape[:2], self.long_side)
        box = letterbox_box(frame_rgb.shape[:2], in_hw)
        (output,) = self.session.run(
            None, {self.input_name: to_input(sample_box(frame_rgb, box, in_hw))}
        )
        return decode_multipose(output, box, score_threshold)


class SinglePose:
    """MoveNet Lightning / Thunder, top-down: one (17, 3) x, y, score per person box."""

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        self.session = _session(path, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_hw = (int(inp.shape[1]), int(inp.shape[2]))

    def __call__(self, frame_rgb: np.ndarray, person_boxes_xyxy, pad: float = 1.25) -> np.ndarray:
        boxes = np.asarray(person_boxes_xyxy, np.float32).reshape(-1, 4)
        out = np.zeros((len(boxes), 17, 3), np.float32)
        for i, person in enumerate(boxes):
            box = square_box(person, pad)
            x = to_input(sample_box(frame_rgb, box, self.input_hw))
            (output,) = self.session.run(None, {self.input_name: x})
            out[i] = decode_single(output, box)
        return out


def open_real(name: str, weights_dir: Path | str = "weights", **kwargs):
    """Open a shipped real model by manifest name (``MULTIPOSE``, ``LIGHTNING``, ``THUNDER``)."""
    entry = real_weights(weights_dir)["networks"][name]
    path = Path(weights_dir) / entry["file"]
    return MultiPose(path, **kwargs) if name == MULTIPOSE else SinglePose(path, **kwargs)
