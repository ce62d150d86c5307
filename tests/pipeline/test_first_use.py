"""`run.py run --source X` on the demo config: a user's own source replaces the demo's world."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cli.run import add_run_arguments, configure, source_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        pytest.param("videos/half.mp4", "half", id="file"),
        pytest.param("file:///a/b%20c.avi", "b_c", id="file-uri"),
        pytest.param("rtsp://127.0.0.1:8554/cam?transport=tcp", "cam", id="rtsp"),
        pytest.param("v4l2:///dev/video0", "video0", id="camera"),
        pytest.param("synth://?seed=1&frames=4", "synth", id="synth"),
    ],
)
def test_source_name(uri: str, name: str) -> None:
    assert source_name(uri) == name


def test_source_replaces_demo_ground_truth_and_output(tmp_path: Path) -> None:
    clip = tmp_path / "walk.mp4"
    clip.write_bytes(b"")  # parse_source only checks that the file exists
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(
        ["-c", str(ROOT / "configs/demo.yaml"), "--source", str(clip), "--source", str(clip)]
    )
    config = configure(args)
    assert config.ground_truth is None and config.generate is None
    assert config.stream_ids() == ["walk", "walk_1"]
    assert config.output.dir == Path("out/walk_walk_1")


@pytest.mark.slow
def test_run_on_a_users_file_exits_0(tmp_path: Path) -> None:
    clip = tmp_path / "mine.mp4"
    subprocess.run(
        [
            "gst-launch-1.0",
            "-q",
            "videotestsrc",
            "num-buffers=10",
            "!",
            "video/x-raw,width=160,height=120,framerate=10/1",
            "!",
            "x264enc",
            "!",
            "mp4mux",
            "!",
            "filesink",
            f"location={clip}",
        ],
        check=True,
    )
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "run",
            "-c",
            str(ROOT / "configs/demo.yaml"),
            "--source",
            str(clip),
            "--metrics",
            "off",
            "--out",
            str(out),
            "--set",
            "publish.wait_for_subscriber_s=0",
            "--publish",
            "tcp://127.0.0.1:0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "mine.mp4").is_file() and (out / "pred_vid_result.json").is_file()
    assert "mine: eos" in done.stdout
