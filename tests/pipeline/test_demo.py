"""The demo's config is valid and its shipped weights load as the networks it names."""

from __future__ import annotations

import json
from pathlib import Path

from cli.run import _GenerateOnly
from parsing.networks import load_network
from pipeline.config import load_config
from pipeline.settings import PipelineConfig

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo.yaml"


def test_demo_config_and_shipped_weights(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    generate = load_config(DEMO, _GenerateOnly).generate
    assert generate is not None and generate.videos == 2
    raw = DEMO.read_text().replace("../.cache/demo/videos/", f"{tmp_path}/")
    raw = raw.replace("../weights/", f"{REPO}/weights/")  # the copy is not beside weights/
    for name in ("demo_2026_00000", "demo_2026_00001"):
        (tmp_path / f"{name}.mp4").write_bytes(b"")
    config_path = tmp_path / "demo.yaml"
    config_path.write_text(raw)
    config = load_config(config_path, PipelineConfig)
    parser = config.parser
    manifest = json.loads((REPO / "weights" / "manifest.json").read_text())
    refiners = parser.parts.refiners
    assert len(refiners) == 3
    for settings in (parser.person, parser.pose, parser.parts, *refiners, *parser.clip.networks):
        network = load_network(settings.model_copy(update={"engine": "torch"}))
        assert settings.weights.name in {entry["file"] for entry in manifest["networks"].values()}
        assert network.input_shape
    assert manifest["total_bytes"] <= 40 * 1024 * 1024
