"""Real MoveNet ONNX models: manifest provenance, numpy geometry, real eyes on real photos."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from parsing import real_models as rm

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights"
REAL = REPO.parent / "shared" / "real"


def test_manifest_real_section_matches_files():
    real = json.loads((WEIGHTS / "manifest.json").read_text())["real"]
    assert set(real["networks"]) == {rm.MULTIPOSE, rm.LIGHTNING, rm.THUNDER}
    for entry in real["networks"].values():
        data = (WEIGHTS / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["licence"] == "Apache-2.0" and entry["source"]["version"]
        assert entry["parity"]["max_abs_diff"] <= entry["parity"]["atol"]
    assert real["total_bytes"] < 40 * 1024 * 1024


def test_sample_box_identity_and_mapping():
    frame = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    whole = np.array([-0.5, -0.5, 5.5, 3.5])  # the frame exactly (pixel centres at integers)
    assert np.allclose(rm.sample_box(frame, whole, (4, 6)), frame)
    box = rm.letterbox_box((4, 6), (32, 32))
    assert np.allclose(box, [-0.5, -1.5, 5.5, 4.5])
    # input pixel j centre (j + 0.5) / w maps back to the frame pixel it sampled
    xy = rm.to_frame(np.array([[(0 + 0.5) / 4, (5 + 0.5) / 6]]), whole)
    assert np.allclose(xy, [[5, 0]])
    assert rm.multipose_input_hw((864, 900)) == (256, 256)
    assert rm.multipose_input_hw((480, 640)) == (192, 256)


def test_decode_multipose_layout():
    out = np.zeros((1, 6, 56), np.float32)
    out[0, 2, :51] = np.tile([0.5, 0.25, 0.9], 17)
    out[0, 2, 51:56] = [0.1, 0.2, 0.9, 0.8, 0.7]
    poses = rm.decode_multipose(out, [0, 0, 100, 200], 0.25)
    assert poses.boxes.shape == (1, 4) and np.allclose(poses.boxes[0], [20, 20, 80, 180])
    assert np.allclose(poses.keypoints[0, 0], [25, 100, 0.9])


@pytest.mark.skipif(not (REAL / "aic").is_dir(), reason="shared/real not present")
def test_multipose_and_thunder_see_real_people():
    from PIL import Image

    data = json.loads((REAL / "aic" / "test_aic.json").read_text())
    img = data["images"][2]  # three people, all 14 joints annotated
    frame = np.asarray(Image.open(REAL / "aic" / img["file_name"]).convert("RGB"))
    gt = [a["bbox"] for a in data["annotations"] if a["image_id"] == img["id"]]
    gt = np.array([[x, y, x + w, y + h] for x, y, w, h in gt], np.float32)
    (poses,) = rm.open_real(rm.MULTIPOSE, WEIGHTS, threads=1)([frame])
    assert len(poses.boxes) >= len(gt)
    for box in gt:
        ix = np.clip(
            np.minimum(poses.boxes[:, 2], box[2]) - np.maximum(poses.boxes[:, 0], box[0]), 0, None
        )
        iy = np.clip(
            np.minimum(poses.boxes[:, 3], box[3]) - np.maximum(poses.boxes[:, 1], box[1]), 0, None
        )
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        assert (ix * iy / (area(poses.boxes) + area(box) - ix * iy)).max() >= 0.5
    kpts = rm.open_real(rm.THUNDER, WEIGHTS, threads=1)(frame, gt)
    assert kpts.shape == (len(gt), 17, 3) and np.median(kpts[..., 2]) > 0.3
    inside = (kpts[..., 0] >= gt[:, None, 0] - 20) & (kpts[..., 0] <= gt[:, None, 2] + 20)
    assert inside.mean() > 0.8
