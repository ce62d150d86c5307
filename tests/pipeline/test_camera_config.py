"""A user's own footage: `run --source X` takes configs/camera.yaml: the real set, no clips."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import build_parser
from cli.run import config_path, configure
from parsing.events import validate
from pipeline.config import CAMERA_CONFIG, DEMO_CONFIG, ConfigError, RawConfig, load_config
from pipeline.config import validate as validate_config
from pipeline.settings import PipelineConfig
from tests.pipeline.test_runner import by_stream, free_endpoint, run_with_subscriber

REPO = Path(__file__).resolve().parents[2]


def _args(*argv: str):
    return build_parser().parse_args(["run", *argv])


def test_run_source_without_config_takes_the_camera_config(shared_media, tmp_path):
    clip = str(shared_media / "pose_demo.mp4")
    assert config_path(_args()) == DEMO_CONFIG  # the demo keeps its meaning
    assert config_path(_args("--source", clip)) == CAMERA_CONFIG
    config = configure(_args("--source", clip, "--out", str(tmp_path)))
    assert config.parser.clip is None and config.parser.parts.mode == "keypoints"
    assert config.parser.person.weights.name == "movenet_multipose_lightning.onnx"
    assert [s.uri for s in config.sources] == [clip] and config.mode == "live"
    demo = configure(_args("-c", str(DEMO_CONFIG), "--source", clip, "--out", str(tmp_path)))
    assert demo.parser.clip is not None and demo.parser.person.weights.suffix == ".safetensors"


def test_the_default_configs_are_found_from_any_directory(shared_media, tmp_path, monkeypatch):
    """`python /path/to/run.py run --source X` from elsewhere: camera.yaml and its weights."""
    monkeypatch.chdir(tmp_path)
    clip = str(shared_media / "pose_demo.mp4")
    config = configure(_args("--source", clip))
    assert config.parser.person.weights == REPO / "weights/real/movenet_multipose_lightning.onnx"
    assert config.parser.person.weights.is_file()
    assert config_path(_args()) == REPO / "configs/demo.yaml"


def test_predictions_need_a_clip_stage(tmp_path):
    data = dict(load_config(REPO / CAMERA_CONFIG, RawConfig, PipelineConfig).root)
    data["output"] = {"dir": tmp_path, "predictions": True}
    with pytest.raises(ConfigError, match=r"output.predictions: .*parser.clip is null") as raised:
        validate_config(PipelineConfig, data, "camera.yaml")
    assert "\n" not in str(raised.value)
    data["output"] = {"dir": tmp_path, "predictions": False}
    data["ground_truth"] = tmp_path
    with pytest.raises(ConfigError, match="ground_truth: scoring needs parser.clip"):
        validate_config(PipelineConfig, data, "camera.yaml")


def test_camera_config_parses_a_real_clip_with_the_real_set(shared_media, tmp_path):
    clip = str(shared_media / "pose_demo.mp4")
    args = _args(
        "--source", clip, "--out", str(tmp_path), "--publish", free_endpoint(), "--metrics", "off",
        "--mode", "offline",  # every frame, so the test can count them
        "--set", "publish.wait_for_subscriber_s=10",
    )  # fmt: skip
    runner, events = run_with_subscriber(configure(args))
    assert runner.report.states == {"pose_demo": "eos"}
    statuses = by_stream(events, "pose_demo", "status")
    assert {s["model_set"] for s in statuses} == {"real"}
    assert statuses[0]["networks"] == {
        "person": "movenet_multipose_lightning",
        "pose": "movenet_lightning",
    }
    frames = by_stream(events, "pose_demo", "frame")
    assert [f["frame_index"] for f in frames] == list(range(5))
    assert by_stream(events, "pose_demo", "clip") == []
    for frame in frames:
        validate(frame)
        assert frame["model_set"] == "real" and frame["latest_clip"] is None
    assert all(frame["humans"] for frame in frames), "a frame of a person without a person"
    people = [human for frame in frames for human in frame["humans"]]
    best = [frame["humans"][0] for frame in frames]  # best score first
    assert all(len(human["parts"]) >= 5 for human in best)
    assert all(part["state"] is None for human in people for part in human["parts"].values())
    assert (tmp_path / "pose_demo.mp4").stat().st_size > 0
    assert not list(tmp_path.glob("*.json"))  # no Kinetics-TPS prediction files
