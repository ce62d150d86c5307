"""The real person and pose stages: picked from the network, run through engines and the batcher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines import MicroBatcher
from models import ModelError
from models.detection import box_iou
from parsing import real_models as rm
from parsing.frame_parser import (
    MultiPoseDetector,
    PersonDetector,
    SinglePoseEstimator,
    person_detector,
    pose_estimator,
)
from parsing.networks import load_network, model_set
from parsing.settings import PersonSettings, PoseSettings
from plugins.pool import NetworkPool

REPO = Path(__file__).resolve().parents[2]
WEIGHTS = REPO / "weights"
REAL = REPO.parent / "shared" / "real"
MULTIPOSE = WEIGHTS / "real" / "movenet_multipose_lightning.onnx"
LIGHTNING = WEIGHTS / "real" / "movenet_lightning.onnx"
ORT = {"engine": "onnxruntime", "threads": 1}


@pytest.fixture(scope="module")
def aic_photo() -> tuple[np.ndarray, np.ndarray]:
    """An AIC photo with three annotated people: (H, W, 3) RGB and their (3, 4) boxes."""
    if not (REAL / "aic").is_dir():
        pytest.skip(f"real photos not found at {REAL}")
    from PIL import Image

    data = json.loads((REAL / "aic" / "test_aic.json").read_text())
    image = data["images"][2]
    frame = np.asarray(Image.open(REAL / "aic" / image["file_name"]).convert("RGB"))
    boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image["id"]]
    return frame, np.array([[x, y, x + w, y + h] for x, y, w, h in boxes], np.float32)


def test_real_networks_load_through_engines_with_their_facts():
    person = load_network(PersonSettings(weights=MULTIPOSE, **ORT))
    pose = load_network(PoseSettings(weights=LIGHTNING, **ORT))
    assert (person.arch, person.origin, person.model) == (rm.MULTIPOSE, "real", None)
    assert pose.input_hw == (192, 192) and pose.classes == list(rm.COCO17)
    # the shipped file fixes the batch at 1; a batch of 3 still runs in one engine call
    crops = np.random.default_rng(0).integers(0, 255, (3, 192, 192, 3)).astype(np.int32)
    (batched,) = pose.engine.run(crops).values()
    single = np.concatenate([next(iter(pose.engine.run(c[None]).values())) for c in crops])
    assert batched.shape == (3, 1, 17, 3) and np.allclose(batched, single, atol=1e-5)
    assert model_set([person.origin, pose.origin]) == "real"
    assert model_set(["real", "synthetic"]) == "mixed"


def test_stage_kind_follows_the_network(tmp_path):
    person = load_network(PersonSettings(weights=MULTIPOSE, **ORT))
    pose = load_network(PoseSettings(weights=LIGHTNING, **ORT))
    assert isinstance(person_detector(person, PersonSettings(weights=MULTIPOSE)), MultiPoseDetector)
    assert isinstance(pose_estimator(pose, PoseSettings(weights=LIGHTNING)), SinglePoseEstimator)
    synthetic = load_network(PersonSettings(weights=WEIGHTS / "person.safetensors"))
    assert type(person_detector(synthetic, PersonSettings(weights=WEIGHTS))) is PersonDetector
    with pytest.raises(ModelError, match="pose network; the person stage takes"):
        person_detector(pose, PersonSettings(weights=LIGHTNING))
    with pytest.raises(ModelError, match="engine must be onnxruntime or tensorrt"):
        load_network(PoseSettings(weights=LIGHTNING))
    stranger = tmp_path / "movenet_lightning.onnx"
    stranger.write_bytes(LIGHTNING.read_bytes()[:-1])
    with pytest.raises(ModelError, match="not a real network of any manifest"):
        load_network(PoseSettings(weights=stranger, **ORT))


def test_real_stages_find_the_annotated_people_through_the_batcher(aic_photo):
    frame, annotated = aic_photo
    pool = NetworkPool(max_batch=8)
    try:
        person_settings = PersonSettings(weights=MULTIPOSE, score_threshold=0.25, **ORT)
        pose_settings = PoseSettings(weights=LIGHTNING, flip_test=False, **ORT)
        person = person_detector(pool.get(person_settings), person_settings)
        pose = pose_estimator(pool.get(pose_settings), pose_settings)
        # two frames (the photo and its mirror) in one call of each stage
        mirrored = np.ascontiguousarray(frame[:, ::-1])
        detections = person([frame, mirrored])
        persons = pose([frame, mirrored], detections)
    finally:
        pool.close()
    found = persons[0]
    assert len(found.scores) >= len(annotated)
    best_iou = box_iou(_tensor(annotated), _tensor(found.boxes_xyxy)).max(dim=1).values
    assert (best_iou >= 0.5).all(), best_iou
    confident = found.keypoints_xys[..., 2] > 0.3
    assert confident.mean() > 0.6
    # every refined box holds its person's confident keypoints
    x, y = found.keypoints_xys[..., 0], found.keypoints_xys[..., 1]
    boxes = found.boxes_xyxy[:, None]
    inside = (x >= boxes[..., 0] - 1) & (x <= boxes[..., 2] + 1)
    inside &= (y >= boxes[..., 1] - 1) & (y <= boxes[..., 3] + 1)
    assert inside[confident].all()
    # the mirrored frame's people are the same people, mirrored
    width = frame.shape[1]
    flipped = persons[1].boxes_xyxy[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width - 1, 0, width - 1, 0]
    assert box_iou(_tensor(annotated), _tensor(flipped)).max(dim=1).values.min() >= 0.5


def test_flip_test_averages_the_mirrored_pose(aic_photo):
    frame, annotated = aic_photo
    with MicroBatcher(_engine_run(LIGHTNING), max_batch=4, name="lightning") as batcher:

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            results = [batcher.submit(sample).result() for sample in batch]
            return {name: np.stack([r[name] for r in results]) for name in results[0]}

        plain = rm.SinglePose(run, (192, 192))(frame, annotated)
        flipped = rm.SinglePose(run, (192, 192), flip_test=True)(frame, annotated)
    assert flipped.shape == plain.shape == (len(annotated), 17, 3)
    # the averaged points stay near the plain ones (a wrong left/right swap would move wrists
    # and ankles across the body) and differ from them (the mirrored run did count)
    spread = np.linalg.norm(flipped[..., :2] - plain[..., :2], axis=-1)
    diagonal = np.hypot(*(annotated[:, 2:] - annotated[:, :2]).T)[:, None]
    confident = plain[..., 2] > 0.3
    assert np.median(spread[confident] / np.broadcast_to(diagonal, spread.shape)[confident]) < 0.05
    assert spread.max() > 0


def _engine_run(path: Path):
    from engines import create_engine

    return create_engine("onnxruntime", path, intra_op_threads=1).run


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(array, np.float32))
