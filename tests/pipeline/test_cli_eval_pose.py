"""``run.py eval-pose`` in-process: the shipped synthetic set on one real folder, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "real"
DEMO = REPO / "configs" / "demo.yaml"


@pytest.mark.skipif(not (REAL / "crowdpose").is_dir(), reason="shared/real not present")
def test_synthetic_set_on_real_crowd_photos(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the config names weights/ relative to the repository
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "crowdpose").symlink_to(REAL / "crowdpose")
    out = tmp_path / "eval.json"
    code = main(["eval-pose", "-c", str(DEMO), "--real", str(tmp_path / "real"), "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())["configs"][str(DEMO)]
    folder = report["folders"]["crowdpose"]
    # 2 photos, 5 annotations of which 4 have keypoints; 39 labelled COCO-17 keypoints
    assert (folder["images"], folder["people"], folder["keypoints"]) == (2, 4, 39)
    assert 0 <= folder["found"] <= min(4, folder["predicted"])
    assert folder["hits"] <= folder["matched_keypoints"]
    assert folder["ms_per_image"] > 0 and report["all"]["people"] == 4
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith(f"| folder | {DEMO}: found (recall) | boxes | PCK@0.2")
    assert rows[2].startswith(f"| crowdpose | {folder['found']}/4 (")


def test_bad_input_is_a_one_line_error(tmp_path, capsys):
    no_parser = tmp_path / "c.yaml"
    no_parser.write_text("mode: live\n")
    real = tmp_path / "real"
    assert main(["eval-pose", "-c", str(no_parser), "--real", str(real)]) == 2
    assert capsys.readouterr().err == (
        f"error: {no_parser}: parser: missing (eval-pose measures the parser's stages)\n"
    )
    bad_key = tmp_path / "d.yaml"
    bad_key.write_text("parser: {person: {weights: w, score_threshold: 2}}\n")
    assert main(["eval-pose", "-c", str(bad_key), "--real", str(real)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {bad_key}: parser: ") and error.count("\n") == 1
    assert "person.score_threshold: Input should be less than or equal to 1 (got 2)" in error
    assert main(["eval-pose", "-c", str(DEMO), "--real", str(real)]) == 2
    assert capsys.readouterr().err == f"error: {real}: not a folder of annotated sets\n"
