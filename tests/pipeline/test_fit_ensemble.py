"""``run.py fit-ensemble``: the config's clip networks, and head weights written back in place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli.fit_ensemble import clip_networks, write_head_weights
from parsing.settings import ParserSettings
from pipeline.config import ConfigError, RawConfig, apply_overrides, load_config, validate
from pipeline.settings import PipelineConfig

REPO = Path(__file__).resolve().parents[2]


def test_head_weights_are_written_in_place(tmp_path: Path) -> None:
    config = tmp_path / "demo.yaml"
    shutil.copyfile(REPO / "configs/demo.yaml", config)
    before = config.read_text().splitlines()
    fitted = [{"video": 0.35, "head": 1.0}, {"video": 0.65, "head": 0.0}]
    write_head_weights(config, fitted)
    networks = clip_networks(config)
    assert [network.head_weights for network in networks] == fitted
    assert [network.weights.name for network in networks] == [
        "csn_ip.safetensors",
        "csn_ir.safetensors",
    ]
    after = config.read_text().splitlines()
    changed = [old for old, new in zip(before, after, strict=True) if old != new]
    assert len(changed) == 2 and all("head_weights:" in line for line in changed)


def test_head_weights_need_one_line_per_network(tmp_path: Path) -> None:
    config = tmp_path / "one.yaml"
    config.write_text("parser:\n  clip:\n    networks:\n      - weights: a.safetensors\n")
    with pytest.raises(ConfigError, match="expected 1 one-line 'head_weights"):
        write_head_weights(config, [{"video": 1.0}])
    config.write_text("parser: {}\n")
    with pytest.raises(ConfigError, match="parser.clip.networks is missing"):
        clip_networks(config)


def test_report_weights_overlay_the_demo_config() -> None:
    overlay = (REPO / "configs/report_ensemble.yaml").read_text()
    raw = load_config(REPO / "configs/demo.yaml", RawConfig, PipelineConfig).root
    data = apply_overrides(raw, [f"parser.clip.networks={overlay}"], "configs/demo.yaml")
    # the parser section alone: the demo's sources are rendered on its first run, not in a clone
    networks = validate(ParserSettings, data["parser"], "demo + report_ensemble").clip.networks
    assert [network.weights for network in networks] == [
        Path("weights/csn_ip.safetensors"),
        Path("weights/csn_ir.safetensors"),
    ]
    assert networks[0].head_weights["video"] == 7.0 and networks[1].head_weights["arm"] == 0.0
