"""Offline mode, with real parts: every decoded frame of a real file gets one frame event, in
order, whatever its timestamps; an endless synthetic source says so when the run starts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.sources import iterate_frames
from tests.pipeline.test_runner import by_stream, make_config, run_with_subscriber

ENCODE_TIMEOUT_S = 120
FRAMES = 60
RAW = f"videotestsrc num-buffers={FRAMES} ! video/x-raw,width=320,height=240,framerate=25/1"
FILES = {
    # MPEG-4 part 2 with B-frames in AVI: the decoder gives pairs of frames one PTS
    "bframes.avi": f"{RAW} ! avenc_mpeg4 max-bframes=2 ! avimux",
    # bare JPEG frames, no container: every frame after the first decodes without a PTS
    "frames.mjpeg": f"{RAW} ! jpegenc",
}


def _encode(path: Path, line: str) -> Path:
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("gst-launch-1.0 is not installed")
    done = subprocess.run(
        ["gst-launch-1.0", "-q", *f"{line} ! filesink location={path}".split()],
        capture_output=True,
        text=True,
        timeout=ENCODE_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0 and "no element" in done.stderr:
        pytest.skip(f"an encoder is missing: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize("name", list(FILES))
def test_every_decoded_frame_gets_one_event_whatever_its_pts(random_weights, tmp_path, name):
    path = _encode(tmp_path / name, FILES[name])
    decoded = [pts for _, pts, _ in iterate_frames(str(path))]
    assert len(decoded) == FRAMES
    assert len(set(decoded)) < FRAMES  # the point of the file: timestamps repeat or are missing
    config = make_config(random_weights, [{"id": "cam", "uri": str(path)}], tmp_path / "out")
    runner, events = run_with_subscriber(config)
    frames = by_stream(events, "cam", "frame")
    assert [e["frame_index"] for e in frames] == list(range(FRAMES))
    assert [e["seq"] for e in frames] == list(range(FRAMES))
    assert [e["pts_ns"] for e in frames] == decoded
    assert runner.report.states == {"cam": "eos"}
    assert runner.report.progress["cam"].frames == FRAMES
