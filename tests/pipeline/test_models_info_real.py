"""`run.py models info` lists the real networks beside the registered ones, files checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from parsing import real_models as rm

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def test_models_info_lists_the_real_networks(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["models", "info", "hrnet_tiny", rm.MULTIPOSE, rm.LIGHTNING, rm.THUNDER]
    assert main([*argv, "--weights", str(WEIGHTS), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["hrnet_tiny"]["gflops"] > 0
    assert rows[rm.MULTIPOSE]["task"].startswith("person: ")
    assert rows[rm.THUNDER]["task"].startswith("pose: ")
    assert rows[rm.LIGHTNING]["input"] == [1, 192, 192, 3]
    for name in (rm.MULTIPOSE, rm.LIGHTNING, rm.THUNDER):
        row = rows[name]
        assert row["kind"] == "real" and row["licence"] == "Apache-2.0" and row["sha256_ok"]
        assert "MoveNet" in row["origin"] and row["parameters"] > 1_000_000
    assert main(["models", "info", "--weights", str(WEIGHTS)]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in (rm.MULTIPOSE, rm.LIGHTNING, "ir_csn_152"))


def test_models_info_flags_a_file_that_is_not_the_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    entry = manifest["real"]["networks"][rm.LIGHTNING]
    (tmp_path / "real").mkdir()
    (tmp_path / entry["file"]).write_bytes((WEIGHTS / entry["file"]).read_bytes()[:-1])
    real = {"networks": {rm.LIGHTNING: entry}}
    (tmp_path / "manifest.json").write_text(json.dumps({"real": real}))
    for _ in ("truncated", "missing"):
        assert main(["models", "info", rm.LIGHTNING, "--weights", str(tmp_path)]) == 0
        assert "SHA256 MISMATCH OR MISSING" in capsys.readouterr().out
        (tmp_path / entry["file"]).unlink(missing_ok=True)
