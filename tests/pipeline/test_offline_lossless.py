"""Offline mode, with real parts: every decoded frame of a real file gets one frame event, in
order, whatever its timestamps; an endless synthetic source says so when the run starts."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cli.run import ENDLESS_SYNTH, warn_endless
from pipeline.sources import iterate_frames
from tests.pipeline.test_runner import by_stream, make_config, run_with_subscriber
from transport.zmq import EventSubscriber

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60.0

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


def test_offline_run_on_endless_synth_says_so_at_start(random_weights, tmp_path):
    uri = "synth://?seed=1&people=1"
    config = make_config(random_weights, [{"id": "world", "uri": uri}], None)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    subscriber = EventSubscriber(config.publish.endpoint)
    process = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "run", "-c", str(path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    statuses = []
    deadline = time.monotonic() + 10 * WAIT_S
    try:
        for _, event in subscriber.events(idle_timeout_s=WAIT_S, until_final=True):
            assert time.monotonic() < deadline, "the run did not end after SIGINT"
            if event["type"] == "status":
                statuses.append(event["state"])
            if event["type"] == "frame" and event["frame_index"] == 2:
                process.send_signal(signal.SIGINT)  # offline: no frame is skipped, 2 comes
        _, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
        subscriber.close()
    assert process.returncode == 0, err
    assert statuses[-1] == "stopped"
    warned = [line for line in err.splitlines() if "endless" in line]
    assert len(warned) == 1 and warned[0].endswith(ENDLESS_SYNTH % uri), err
    assert err.index(warned[0]) < err.index("world: synth -> ")  # before the stream is built


@pytest.mark.parametrize(
    ("uri", "mode", "warned"),
    [
        pytest.param("synth://?seed=1", "offline", True, id="offline-endless"),
        pytest.param("synth://?seed=1&frames=3", "offline", False, id="offline-finite"),
        pytest.param("synth://?seed=1", "live", False, id="live-endless-on-purpose"),
    ],
)
def test_only_offline_synth_without_frames_warns(random_weights, caplog, uri, mode, warned):
    config = make_config(random_weights, [{"id": "w", "uri": uri}], None, mode=mode)
    with caplog.at_level(logging.WARNING, logger="cli.run"):
        warn_endless(config)
    assert [r.getMessage() for r in caplog.records] == ([ENDLESS_SYNTH % uri] if warned else [])
