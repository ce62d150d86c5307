"""Config errors as a new user meets them: one line naming file, key and problem; exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import ConfigError, apply_overrides

GOOD = {
    "sources": [{"uri": "synth://?seed=1&people=1&frames=4"}],
    "parser": {
        "person": {"weights": "w/person.safetensors"},
        "pose": {"weights": "w/pose.safetensors"},
        "parts": {"weights": "w/parts.safetensors"},
        "clip": {"networks": [{"weights": "w/csn.safetensors"}]},
    },
    "metrics": {"enabled": False},
}


def _with(path: tuple, value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


CASES = [
    ("unknown-key", ("parser", "person", "thresh"), 0.5, "parser.person.thresh: unknown key"),
    ("wrong-type", ("parser", "clip", "hop"), "often", "parser.clip.hop: Input should be a valid"),
    ("bad-uri", ("sources",), [{"uri": "ftp://cam/1"}], "sources.0.uri"),
    ("bad-mode", ("mode",), "fast", "mode: Input should be 'live' or 'offline'"),
]


@pytest.mark.parametrize(
    ("data", "expected"),
    [pytest.param(_with(path, value), expected, id=name) for name, path, value, expected in CASES]
    + [
        pytest.param(
            {k: v for k, v in GOOD.items() if k != "parser"},
            "parser: Field required",
            id="missing-section",
        )
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, capsys, data, expected):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith(f"error: {config}") and expected in err, err


def test_missing_config_file(tmp_path: Path, capsys):
    assert main(["run", "-c", str(tmp_path / "nowhere.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"error: {tmp_path / 'nowhere.yaml'}: cannot read config (No such file or directory)"
    )


def test_not_yaml(tmp_path: Path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("sources: [\n")
    assert main(["run", "-c", str(config)]) == 2
    assert "not valid YAML at line" in capsys.readouterr().err


def test_missing_weights_fail_before_any_stream_starts(tmp_path: Path, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(GOOD))
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "w/person.safetensors" in err, err


def test_overrides_set_nested_keys_and_list_items():
    data = {"parser": {"parts": {"paint": True}, "clip": {"networks": [{"weights": "a"}]}}}
    apply_overrides(data, ["parser.parts.paint=false", "parser.clip.networks.0.weights=b"], "x")
    assert data == {"parser": {"parts": {"paint": False}, "clip": {"networks": [{"weights": "b"}]}}}
    with pytest.raises(ConfigError, match="not key.path=value"):
        apply_overrides(data, ["parser.parts.paint"], "x")
    with pytest.raises(ConfigError, match="'7' is not in the config"):
        apply_overrides(data, ["parser.clip.networks.7.weights=c"], "x")
