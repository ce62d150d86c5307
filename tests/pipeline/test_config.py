"""Config errors as a new user meets them: one line naming file, key and problem; exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli.main import main
from cli.run import _GenerateOnly, add_run_arguments, configure
from pipeline.config import ConfigError, apply_overrides, load_config
from pipeline.settings import PipelineConfig
from tests.pipeline.test_runner import free_endpoint

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 300

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


def _run_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return parser.parse_args(list(argv))


def test_paths_in_a_config_file_resolve_beside_it(tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    (site / "clips").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    for clip in (site / "clips" / "a.mp4", tmp_path / "shared" / "b.mp4"):
        clip.write_bytes(b"")  # parse_source checks that the file exists
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["sources"] = [
        {"uri": "clips/a.mp4"},
        {"uri": "../shared/b.mp4"},
        {"uri": "synth://?seed=1&frames=4"},
        {"uri": "rtsp://127.0.0.1:8554/cam"},
    ]
    data["parser"]["clip"]["prior"] = "w/prior.json"
    data["ground_truth"] = "gt"
    data["generate"] = {"out": "split", "videos": 1, "seed": 0}
    data["output"] = {"dir": "out"}
    data["publish"] = {"curve": {"secret_key": "keys/server.key_secret", "allow": "/etc/allowed"}}
    (site / "pipeline.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path / "shared")  # anywhere but beside the config

    config = load_config(site / "pipeline.yaml", PipelineConfig)
    parser = config.parser
    weights = [parser.person, parser.pose, parser.parts, *parser.clip.networks]
    assert [w.weights for w in weights] == [
        site / "w" / f"{name}.safetensors" for name in ("person", "pose", "parts", "csn")
    ]
    assert parser.clip.prior == site / "w" / "prior.json"
    assert [s.uri for s in config.sources] == [
        str(site / "clips" / "a.mp4"),
        str(tmp_path / "shared" / "b.mp4"),
        "synth://?seed=1&frames=4",
        "rtsp://127.0.0.1:8554/cam",
    ]
    assert (config.ground_truth, config.generate.out, config.output.dir) == (
        site / "gt",
        site / "split",
        site / "out",
    )
    assert config.publish.curve.secret_key == site / "keys" / "server.key_secret"
    assert config.publish.curve.allow == Path("/etc/allowed")

    # the command line's values stay relative to the current directory
    args = _run_args(
        "-c", str(site / "pipeline.yaml"), "--out", "mine", "--set", "parser.pose.weights=p.st"
    )
    config = configure(args)
    assert (config.output.dir, config.parser.pose.weights) == (Path("mine"), Path("p.st"))
    assert config.parser.person.weights == site / "w" / "person.safetensors"


def test_demo_config_works_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    demo = REPO / "configs" / "demo.yaml"
    generate = load_config(demo, _GenerateOnly).generate
    assert generate is not None and generate.out == REPO / ".cache" / "demo"
    clip = tmp_path / "walk.mp4"
    clip.write_bytes(b"")
    config = configure(_run_args("-c", str(demo), "--source", "walk.mp4"))
    parser = config.parser
    for network in (parser.person, parser.pose, parser.parts, *parser.clip.networks):
        assert network.weights.is_relative_to(REPO / "weights") and network.weights.is_file()
    assert parser.clip.prior.is_file()


def test_run_from_another_directory_finds_the_config_neighbours(random_weights, tmp_path: Path):
    site = tmp_path / "site"
    (site / "w").mkdir(parents=True)
    weights = {}  # relative to the config file
    for name, path in random_weights.items():
        (site / "w" / path.name).symlink_to(path)
        weights[name] = f"w/{path.name}"
    (site / "clips").mkdir()
    subprocess.run(
        ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=8", "!",
         "video/x-raw,width=160,height=120,framerate=10/1", "!", "jpegenc", "!", "avimux", "!",
         "filesink", f"location={site / 'clips' / 'walk.avi'}"],
        check=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    config = {
        "sources": [{"id": "walk", "uri": "clips/walk.avi"}],
        "parser": {
            "person": {"weights": weights["person"], "score_threshold": 0.0, "max_persons": 2},
            "pose": {"weights": weights["pose"]},
            "parts": {"weights": weights["parts"]},
            "clip": {"networks": [{"weights": weights["csn"]}], "hop": 4, "average_clips": 3},
        },
        "publish": {"endpoint": free_endpoint(), "wait_for_subscriber_s": 0},
        "metrics": {"enabled": False},
        "output": {"dir": "out"},
    }
    (site / "pipeline.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "run", "-c", str(site / "pipeline.yaml")],
        cwd=elsewhere, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "walk: eos" in done.stdout
    out = site / "out"
    assert (out / "walk.mp4").is_file() and (out / "pred_vid_result.json").is_file()
    assert not any(elsewhere.iterdir())
