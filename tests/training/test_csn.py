"""The csn recipe: clip geometry, label vocabularies, one step, both layouts, resume, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import models
from parsing.inputs import (
    centre_crop,
    clip_frames,
    person_clip_crops,
    random_crop_flip,
    resize_short_side,
)
from tests.training.test_pose import REPO, make_tiny_split
from tps.formats import GroundTruth, GtHuman, GtPart, read_gt
from training.common import fit, seed_everything
from training.csn import (
    HEADS,
    UNKNOWN_LABEL,
    ClipBatches,
    ClipVideos,
    CsnConfig,
    PerHeadNetworks,
    build_network,
    build_vocabulary,
    clip_loss,
    encode_labels,
    evaluate_clips,
    jitter_boxes,
    person_sequences,
    saved_networks,
    train_csn,
    video_labels,
)
from training.data import PersonKeypoints

CROP = 32
CLIP_LEN = 4
SHORT_SIDE = 40


def _human(verbs: dict[str, str]) -> GtHuman:
    box = (0.0, 0.0, 10.0, 10.0)
    return GtHuman(box, {part: GtPart(box, verb) for part, verb in verbs.items()})


@pytest.fixture
def gt() -> GroundTruth:
    """Two videos: a lunge whose legs mostly bend, a push-up with one annotated arm."""
    return GroundTruth(
        labels={"a": "lunge", "b": "push_up"},
        parts={
            "a": {
                "img_00001.json": [_human({"left_leg": "bend", "head": "none"})],
                "img_00006.json": [_human({"right_leg": "bend", "left_leg": "unbend"})],
            },
            "b": {"img_00001.json": [_human({"left_arm": "bend"})]},
        },
    )


def _config(tmp_path: Path, **overrides: object) -> CsnConfig:
    values = {
        "data": tmp_path,
        "out": tmp_path / "out",
        "epochs": 2,
        "batch_size": 2,
        "lr": 0.01,
        "clip_len": CLIP_LEN,
        "frame_interval": 2,
        "cache_step": 1,
        "short_side": SHORT_SIDE,
        "crop_size": CROP,
        "val_clips": 2,
        "log_interval": 1,
    }
    return CsnConfig(**{**values, **overrides})


@pytest.fixture
def videos() -> ClipVideos:
    """Four short videos: a bright square moving right (class 0) or left (class 1)."""
    rng = np.random.default_rng(0)
    frames = []
    for direction in (1, -1, 1, -1):
        clip = rng.integers(0, 40, (12, SHORT_SIDE, 48, 3), dtype=np.uint8)
        for t in range(12):
            x = 20 + direction * t
            clip[t, 15:25, x : x + 8] = 255
        frames.append(clip)
    targets = {head: np.array([0, 1, 0, 1]) for head in HEADS}
    return ClipVideos(["r0", "l0", "r1", "l1"], frames, targets)


def _vocabulary() -> dict[str, list[str]]:
    return {head: [f"{head}_0", f"{head}_1"] for head in HEADS}


def test_resize_and_crop_geometry() -> None:
    frames = np.zeros((3, 240, 320, 3), dtype=np.uint8)
    frames[:, 100:140, 140:180] = 200
    resized = resize_short_side(frames, 128)
    assert resized.shape == (3, 128, 171, 3) and resized.dtype == np.uint8
    clip = clip_frames(frames, size=112, short_side=128)
    assert clip.shape == (3, 112, 112, 3)
    assert np.array_equal(clip, centre_crop(resized, 112))
    assert clip[:, 56, 56].min() == 200  # the centre of the frame stays the centre
    portrait = resize_short_side(np.zeros((1, 90, 60, 3), dtype=np.uint8), 30)
    assert portrait.shape == (1, 45, 30, 3)


def test_random_crop_flip_is_a_window_of_the_frames() -> None:
    frames = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    rng = np.random.default_rng(3)
    crop = random_crop_flip(frames, 4, flip_prob=0.0, rng=rng)
    windows = [frames[:, top : top + 4, left : left + 4] for top in range(3) for left in range(5)]
    assert any(np.array_equal(crop, window) for window in windows)
    flipped = random_crop_flip(frames, 4, flip_prob=1.0, rng=rng)
    assert any(np.array_equal(flipped[:, :, ::-1], window) for window in windows)


def test_labels_and_vocabulary(gt: GroundTruth) -> None:
    labels = video_labels(gt)
    assert labels["a"]["video"] == "lunge"
    assert labels["a"]["leg"] == "lunge_Leg_bend"  # 2 bend vs 1 unbend
    assert labels["b"]["arm"] == "push_up_Arm_bend"
    assert labels["b"]["head"] == "push_up_Head_none"  # never annotated: MISSING_STATE
    vocabulary = build_vocabulary(labels)
    assert list(vocabulary) == list(HEADS)
    assert vocabulary["video"] == ["lunge", "push_up"]
    unseen = {"c": {**labels["a"], "video": "capoeira"}}
    encoded = encode_labels({**labels, **unseen}, ["b", "c"], vocabulary)
    assert encoded["video"].tolist() == [1, UNKNOWN_LABEL]
    assert encoded["leg"].tolist() == [vocabulary["leg"].index("push_up_Leg_none"), 0]


def test_config_rejects_inconsistent_geometry(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_step"):
        _config(tmp_path, frame_interval=3, cache_step=2)
    with pytest.raises(ValueError, match="crop_size"):
        _config(tmp_path, crop_size=64)


def test_batches_have_the_contract_shapes(videos: ClipVideos, tmp_path: Path) -> None:
    config = _config(tmp_path)
    batches = ClipBatches(videos, config, epoch=0)
    assert len(batches) == 2
    clips, targets = next(iter(batches))
    assert clips.shape == (2, 3, CLIP_LEN, CROP, CROP) and clips.dtype == torch.float32
    assert set(targets) == set(HEADS) and targets["video"].dtype == torch.int64


@pytest.mark.parametrize("mode", ["shared", "separate"])
def test_one_step_reduces_the_loss(videos: ClipVideos, tmp_path: Path, mode: str) -> None:
    seed_everything(0)
    config = _config(tmp_path, mode=mode, batch_size=4)
    model = build_network(config, _vocabulary())
    model.eval()  # no dropout: the same batch gives the same loss
    batch = next(iter(ClipBatches(videos, config, epoch=0)))
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True)
    before = sum(clip_loss(model, batch).values())
    before.backward()
    optimizer.step()
    after = sum(clip_loss(model, batch).values())
    assert after.item() < before.item()


def test_separate_mode_saves_one_loadable_network_per_head(tmp_path: Path) -> None:
    config = _config(tmp_path, mode="separate", arch="ip_csn_tiny")
    vocabulary = _vocabulary()
    model = build_network(config, vocabulary)
    assert isinstance(model, PerHeadNetworks)
    clips = torch.zeros(1, 3, CLIP_LEN, CROP, CROP)
    assert set(model.eval()(clips)) == set(HEADS)
    networks = saved_networks(model)
    assert sorted(networks) == sorted(f"csn_{head}" for head in HEADS)
    network = networks["csn_arm"]
    path = models.save_checkpoint(network, tmp_path / "csn_arm.safetensors", config.arch,
                                  {"arm": vocabulary["arm"]})  # fmt: skip
    loaded, report = models.build_from_checkpoint(path)
    assert report.classes == {"arm": vocabulary["arm"]}
    assert torch.equal(loaded.eval()(clips)["arm"], network.eval()(clips)["arm"])


def test_frozen_bn_keeps_running_statistics(videos: ClipVideos, tmp_path: Path) -> None:
    config = _config(tmp_path, frozen_bn=True)
    model = build_network(config, _vocabulary())
    before = model.backbone.conv1.bn.running_mean.clone()
    model.train()
    clip_loss(model, next(iter(ClipBatches(videos, config, epoch=0))))
    assert torch.equal(model.backbone.conv1.bn.running_mean, before)


def test_resume_continues_identically(videos: ClipVideos, tmp_path: Path) -> None:
    def run(out: Path, epochs: int, resume: bool) -> dict[str, torch.Tensor]:
        config = _config(tmp_path, out=out, epochs=epochs)
        seed_everything(config.seed)
        model = build_network(config, _vocabulary())
        fit(model, lambda epoch: ClipBatches(videos, config, epoch), clip_loss, config, out,
            resume=resume)  # fmt: skip
        return model.state_dict()

    straight = run(tmp_path / "a", 2, resume=False)
    run(tmp_path / "b", 1, resume=False)
    resumed = run(tmp_path / "b", 2, resume=True)
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


class _MotionOracle(torch.nn.Module):
    """Tells the square's direction from its brightness-weighted x centroid: right -> class 0."""

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        weights = clips.mean(1).clamp(min=0)  # N,T,H,W
        columns = torch.arange(clips.shape[-1], dtype=torch.float32)
        centroid = (weights.sum(2) * columns).sum(-1) / weights.sum((2, 3))  # N,T
        shift = centroid[:, -1] - centroid[:, 0]  # N
        logits = torch.stack((shift, -shift), dim=1)  # N,2
        return {head: logits for head in HEADS}


def test_validation_scores_every_head(videos: ClipVideos, tmp_path: Path) -> None:
    config = _config(tmp_path)
    targets = {head: values.copy() for head, values in videos.targets.items()}
    targets["arm"] = np.array([1, 1, 1, 1])  # half right
    targets["leg"] = np.array([0, UNKNOWN_LABEL, 0, 1])  # an unseen label is always wrong
    metrics = evaluate_clips(_MotionOracle(), ClipVideos(videos.names, videos.frames, targets),
                             config)  # fmt: skip
    assert metrics["acc_video"] == 1.0
    assert metrics["acc_arm"] == 0.5
    assert metrics["acc_leg"] == 0.75
    assert metrics["acc_parts"] == pytest.approx((4 * 1.0 + 0.5 + 0.75) / 6)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real split shared by this module's tests."""
    return make_tiny_split(tmp_path_factory)


@pytest.mark.parametrize("name", ["csn.yaml", "csn_ip.yaml"])
def test_config_files_validate(tiny_split: Path, name: str) -> None:
    data = yaml.safe_load((REPO / "configs/train" / name).read_text())
    config = CsnConfig.model_validate({**data, "data": tiny_split, "val_data": tiny_split})
    assert config.input_shape == (3, 12, 64, 64) and config.mode == "shared"
    assert config.clips == "person" and config.arch in models.names()


def test_train_csn_writes_a_parser_ready_checkpoint(tiny_split: Path, tmp_path: Path) -> None:
    config = _config(tiny_split, out=tmp_path / "csn", val_data=tiny_split, epochs=1)
    metrics = train_csn(config)
    assert 0.0 <= metrics["val_acc_video"] <= 1.0
    path = tmp_path / "csn" / "csn.safetensors"
    model, report = models.build_from_checkpoint(path)
    metadata = models.read_metadata(path)
    labels = video_labels(read_gt(tiny_split))
    assert report.classes == build_vocabulary(labels)
    assert json.loads(metadata["input_shape"]) == [3, CLIP_LEN, CROP, CROP]
    assert json.loads(metadata["clip"])["frame_interval"] == config.frame_interval
    logits = model.eval()(torch.zeros(1, 3, CLIP_LEN, CROP, CROP))
    assert {head: tuple(value.shape) for head, value in logits.items()} == {
        head: (1, len(names)) for head, names in report.classes.items()
    }


def test_validation_decides_per_video_over_its_persons(tmp_path: Path) -> None:
    # one video, two persons: a square moving right fast (sure: class 0), one moving left slowly
    # (less sure: class 1); the video's average says class 0, each person alone is half right
    frames = []
    for step in (2, -1):
        clip = np.zeros((12, SHORT_SIDE, 48, 3), dtype=np.uint8)
        for t in range(12):
            x = 20 + step * t
            clip[t, 15:25, x : x + 8] = 255
        frames.append(clip)
    targets = {head: np.array([0, 0]) for head in HEADS}
    config = _config(tmp_path)
    per_video = ClipVideos(["v#1", "v#2"], frames, targets, ["v", "v"])
    assert evaluate_clips(_MotionOracle(), per_video, config)["acc_video"] == 1.0
    per_person = ClipVideos(["v#1", "v#2"], frames, targets)
    assert evaluate_clips(_MotionOracle(), per_person, config)["acc_video"] == 0.5


def test_person_context_centre_is_the_parsers_crop(tmp_path: Path) -> None:
    config = _config(tmp_path, clips="person", box_scale_jitter=0.1, box_shift_jitter=0.05,
                     short_side=CROP)  # fmt: skip
    assert config.person_context == CROP + 2 * 4  # 32 * 0.2 / 2 = 3.2 -> 4 pixels a side
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    box = np.array([60.0, 30.0, 90.0, 100.0], dtype=np.float32)
    split = _KeypointSplit(box)
    (_, crops), = person_sequences(split, "v", frame[None], config)  # fmt: skip
    assert crops.shape == (1, config.person_context, config.person_context, 3)
    parser_crop = person_clip_crops(frame, box, CROP)
    difference = np.abs(centre_crop(crops, CROP).astype(int) - parser_crop.astype(int))
    assert np.median(difference) <= 2  # the same pixels, resampled once more
    still = _config(tmp_path, clips="person", box_scale_jitter=1e-9, box_shift_jitter=1e-9,
                    short_side=CROP)  # fmt: skip
    clip = np.repeat(crops, 3, axis=0)
    assert np.array_equal(jitter_boxes(clip, still, rng), centre_crop(clip, CROP))
    moved = jitter_boxes(clip, config, rng)
    assert moved.shape == (3, CROP, CROP, 3) and not np.array_equal(moved[0], moved[1])
    with pytest.raises(ValueError, match="need clips: person"):
        _config(tmp_path, box_shift_jitter=0.1)


class _KeypointSplit:
    """The one thing `person_sequences` reads from a split: one person's box in every frame."""

    def __init__(self, box: np.ndarray) -> None:
        self.box = box

    def keypoints(self, video: str) -> list[list[PersonKeypoints]]:
        return [[PersonKeypoints(track=0, box_xyxy=self.box, keypoints_xyv=np.zeros((17, 3)))]]
