"""Failures a user meets first, told in the user's terms; restarts that leave nothing behind.

Real parts throughout: files spoilt as users spoil them, a loopback RTSP server (a path it does not
serve, a port nobody listens on, a stream that ends so the runner reconnects), GStreamer, the tiny
random networks, the metrics server over HTTP.
"""

from __future__ import annotations

import gc
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli.main import main
from cli.run import summarise
from media.gst import (
    demuxer_error,
    failure_text,
    parse_launch,
    quote,
    run_until_eos,
    stalled_demuxer,
)
from pipeline import supervision
from pipeline.runner import Runner
from pipeline.settings import PipelineConfig
from pipeline.supervision import SupervisedStream
from tests.pipeline.test_bad_inputs import make_bad_files, write_config
from tests.pipeline.test_reliability import free_port
from tests.pipeline.test_runner import free_endpoint, make_config

from gi.repository import Gst  # isort: skip  (media.gst has required the version)

ENDING_STREAM = (
    "( videotestsrc num-buffers=6 ! video/x-raw,width=64,height=48,framerate=30/1"
    " ! x264enc tune=zerolatency key-int-max=2 ! rtph264pay name=pay0 pt=96 )"
)
"""An RTSP stream that ends after a few frames: a live source then reconnects at once."""
FAST_RECONNECT = {"initial_delay_s": 0.05, "max_delay_s": 0.05, "jitter": 0.0}
INTERNAL_NAMES = ("typefind", "qtdemux", "rtspsrc", "decodebin", "filesrc")
WAIT_S = 60.0
NO_WAIT = ("--set", "publish.wait_for_subscriber_s=0")
"""Nobody subscribes in these runs: an offline run need not wait for a subscriber."""
POLL_S = 0.05
START_TIMEOUT_S = 2.0
RACE_TRIES = 200
CUT_MP4_ERROR = "not a playable video (This file contains no playable streams)"
LOST_AFTER_S = 2.0


# -- item 2: each failure names the user's source, once -----------------------------------------
@pytest.fixture(scope="module")
def not_a_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    return path


@pytest.fixture(scope="module")
def cut_mp4(tmp_path_factory) -> Path:
    return make_bad_files(tmp_path_factory.mktemp("cut"))["half"]


@pytest.fixture(scope="module")
def sound_only(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sound") / "song.mp4"
    run_until_eos(
        parse_launch(
            "audiotestsrc num-buffers=20 ! audioconvert ! avenc_aac ! mp4mux"
            f" ! filesink location={quote(str(path))}"
        ),
        WAIT_S,
    )
    return path


@pytest.mark.parametrize(
    ("fixture", "meaning"),
    [
        pytest.param("not_a_video", "not a video (", id="text-file-named-mp4"),
        pytest.param("cut_mp4", "not a playable video (", id="mp4-cut-in-half"),
        pytest.param("sound_only", "no video stream in it (", id="sound-only-mp4"),
    ],
)
def test_unplayable_file_is_one_error_naming_it_and_writes_no_video(
    random_weights, tmp_path, capsys, request, fixture, meaning
):
    source: Path = request.getfixturevalue(fixture)
    config = write_config(tmp_path / "pipeline.yaml", random_weights)
    out = tmp_path / "out"
    code = main(["run", "-c", str(config), "--source", str(source), "--out", str(out), *NO_WAIT])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {source}: {meaning}"), captured.err
    assert not any(name in errors[0] for name in INTERNAL_NAMES), errors[0]
    assert f"{source.stem}: error " in captured.out, "the summary says error, not stopped"
    assert "annotated video" not in captured.out
    assert not list(out.glob("*.mp4")), "no empty annotated video is left behind"


def test_missing_source_file_is_named_once(random_weights, tmp_path, capsys):
    missing = tmp_path / "nowhere.mp4"
    config = write_config(tmp_path / "pipeline.yaml", random_weights)
    assert main(["run", "-c", str(config), "--source", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: no such file"


def test_missing_file_in_a_config_is_one_problem(random_weights, tmp_path, capsys):
    missing = tmp_path / "nowhere.mp4"
    config = write_config(
        tmp_path / "pipeline.yaml", random_weights, sources=[{"id": "s", "uri": str(missing)}]
    )
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {config}: sources.0.uri: {missing}: no such file", err


def run_to_end(config: PipelineConfig) -> Runner:
    runner = Runner(config)
    runner.report = runner.run()
    return runner


def test_rtsp_path_not_served_and_refused_port_name_the_url(
    random_weights, rtsp_server, tmp_path, caplog
):
    served = rtsp_server(ENDING_STREAM, "/cam")
    nope = served.replace("/cam", "/nope")
    refused = f"rtsp://127.0.0.1:{free_port()}/live"
    sources = [{"id": "nope", "uri": nope}, {"id": "refused", "uri": refused}]
    reconnect = {**FAST_RECONNECT, "max_attempts": 1}
    publish = {"endpoint": free_endpoint(), "wait_for_subscriber_s": 0}
    config = make_config(
        random_weights, sources, tmp_path / "out", reconnect=reconnect, publish=publish
    )
    with caplog.at_level(logging.WARNING, logger="pipeline.supervision"):
        report = run_to_end(config).report
    assert report.states == {"nope": "error", "refused": "error"}
    assert report.errors["nope"] == f"{nope}: not found (Not Found (404))"
    assert report.errors["refused"].startswith(f"{refused}: cannot open or connect (")
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for stream, uri in (("nope", nope), ("refused", refused)):
        assert [m for m in retries if m.startswith(f"stream {stream}: {uri}: ")], retries
    assert report.video_paths == {} and not list((tmp_path / "out").glob("*.mp4"))


@pytest.fixture
def silent_server():
    """A loopback TCP port that accepts connections and never answers (a hung camera); closed
    after the test."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    server.settimeout(POLL_S)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(WAIT_S)
    for connection in held:
        connection.close()
    server.close()


def test_a_source_that_never_delivers_fails_at_the_start_timeout(
    random_weights, silent_server, tmp_path
):
    """RTSP that connects and then says nothing: without the start timeout the run waits for
    rtspsrc's own, far longer, or for ever; here the stream fails alone and the others go on."""
    hung = f"rtsp://127.0.0.1:{silent_server}/cam"
    sources = [
        {"id": "hung", "uri": hung},
        {"id": "good", "uri": "synth://?seed=1&people=1&frames=3"},
    ]
    publish = {"endpoint": free_endpoint(), "wait_for_subscriber_s": 0}
    config = make_config(
        random_weights,
        sources,
        tmp_path / "out",
        reconnect={"max_attempts": 0},
        publish=publish,
        start_timeout_s=START_TIMEOUT_S,
    )
    started = time.monotonic()
    report = run_to_end(config).report
    assert time.monotonic() - started < WAIT_S
    assert report.states == {"hung": "error", "good": "eos"}
    assert report.errors["hung"] == f"{hung}: did not start playing within {START_TIMEOUT_S:g} s"
    assert "hung" not in report.video_paths


def test_a_lost_demuxer_error_is_seen_and_read_again(cut_mp4, shared_media):
    """decodebin sometimes swallows the error of a cut MP4's demuxer and waits for ever: that
    state is seen, a healthy file's prerolled pipeline is not taken for it, and the demuxer run
    alone tells the error again."""
    lines = {
        name: f"filesrc location={quote(str(path))} ! decodebin ! videoconvert ! fakesink"
        for name, path in (("cut", cut_mp4), ("healthy", shared_media / "pose_demo.mp4"))
    }
    assert failure_text(demuxer_error(cut_mp4, "qtdemux", LOST_AFTER_S)) == CUT_MP4_ERROR
    assert demuxer_error(shared_media / "pose_demo.mp4", "qtdemux", LOST_AFTER_S) is None
    wanted = Gst.MessageType.ERROR | Gst.MessageType.ASYNC_DONE
    for _ in range(RACE_TRIES):
        for name, line in lines.items():
            pipeline = parse_launch(line)
            pipeline.set_state(Gst.State.PLAYING)
            message = pipeline.get_bus().timed_pop_filtered(int(LOST_AFTER_S * Gst.SECOND), wanted)
            stalled = stalled_demuxer(pipeline)
            pipeline.set_state(Gst.State.NULL)
            if name == "healthy":
                assert message is not None and message.type == Gst.MessageType.ASYNC_DONE
                assert stalled is None
            elif message is None:
                assert stalled == "qtdemux"
                return
    pytest.skip(f"decodebin kept every error of {RACE_TRIES} starts: the race did not happen")


def test_a_stream_whose_demuxer_error_is_lost_fails_alone(
    random_weights, silent_server, monkeypatch
):
    """The lost error cannot be made to happen at will, so the check is forced on a source that
    never starts: the stream fails with what is known long before the start timeout, alone."""
    monkeypatch.setattr(
        supervision,
        "stalled_demuxer",
        lambda pipeline: "rtph264depay" if pipeline.get_name() == "hung" else None,
    )
    hung = f"rtsp://127.0.0.1:{silent_server}/cam"
    sources = [{"id": "hung", "uri": hung}, {"id": "good", "uri": "synth://?frames=3"}]
    publish = {"endpoint": free_endpoint(), "wait_for_subscriber_s": 0}
    config = make_config(
        random_weights, sources, None, publish=publish, reconnect={"max_attempts": 0}
    )
    report = run_to_end(config).report
    assert report.states == {"hung": "error", "good": "eos"}
    assert (
        report.errors["hung"]
        == f"{hung}: not a playable video (its rtph264depay stopped without a word)"
    )


def healthz(url: str, path: str = "/healthz") -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + path, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


DOWN_AFTER_S = 2.0


def test_healthz_is_not_ok_once_a_stream_is_down_past_the_grace_period(random_weights, tmp_path):
    sources = [{"id": "cam", "uri": f"rtsp://127.0.0.1:{free_port()}/live"}]
    config = make_config(
        random_weights,
        sources,
        tmp_path,
        mode="live",
        reconnect=FAST_RECONNECT,
        metrics={"address": "127.0.0.1:0", "down_after_s": DOWN_AFTER_S},
    )
    runner = Runner(config)
    run = threading.Thread(target=runner.run, daemon=True)
    run.start()
    answers: list[tuple[int, dict]] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while not answers or answers[-1][0] == 200:
            assert time.monotonic() < deadline, f"/healthz stayed ok: {answers[-3:]}"
            time.sleep(POLL_S)
            if runner.metrics_url is not None:
                answers.append(healthz(runner.metrics_url))
        # a lost camera is not the process's fault: the liveness answer stays 200, listing it
        live_status, live_body = healthz(runner.metrics_url, "/livez")
    finally:
        runner.stop()
        run.join(WAIT_S)
    status, body = answers[-1]
    assert (status, body["status"], body["down"]) == (503, "down", ["cam"])
    assert (live_status, live_body["status"], live_body["down"]) == (200, "down", ["cam"])
    down_at = next(
        i for i, (_, b) in enumerate(answers) if b["streams"]["cam"]["state"] != "starting"
    )
    assert answers[down_at][0] == 200, "within the grace period a lost stream is still ok"


# -- after reconnects: every file named; nothing grows with restarts ----------------------------
class RestartingRunner(Runner):
    """Stops after `restarts` restarts of its stream, counting Python objects at chosen ones."""

    def __init__(self, config: PipelineConfig, restarts: int, count_at: tuple[int, ...]) -> None:
        super().__init__(config)
        self.last = restarts
        self.count_at = count_at
        self.objects: dict[int, int] = {}

    def _start(self, slot: SupervisedStream) -> bool:
        if slot.restarts in self.count_at:  # between attempts: no pipeline is running
            gc.collect()  # log records are left out: pytest keeps every one it captures
            objects = gc.get_objects()
            self.objects[slot.restarts] = sum(
                1 for obj in objects if type(obj) is not logging.LogRecord
            )
        if slot.restarts >= self.last:
            self.stop()
        return super()._start(slot)


def restarting_config(random_weights, url: str, out: Path | None) -> PipelineConfig:
    return make_config(
        random_weights,
        [{"id": "cam", "uri": f"{url}?transport=tcp"}],
        out,
        mode="live",
        reconnect=FAST_RECONNECT,
        output={"dir": out, "predictions": False},
    )


def test_summary_names_every_annotated_video_after_reconnects(
    random_weights, rtsp_server, tmp_path, capsys
):
    out = tmp_path / "out"
    config = restarting_config(random_weights, rtsp_server(ENDING_STREAM), out)
    runner = RestartingRunner(config, restarts=3, count_at=())
    report = runner.run()
    summarise(config, report)
    printed = capsys.readouterr().out
    written = sorted(out.glob("cam*.mp4"))
    assert len(written) >= 2, "the stream was restarted and played more than once"
    assert sorted(report.video_paths["cam"]) == written
    for path in written:
        assert path.stat().st_size > 0
        assert f"cam: annotated video {path}\n" in printed


RESTARTS = 24
COUNT_AT = (8, 16, 24)
GROWTH_PER_RESTART = 2
"""Objects a restart may leave behind on average (caches warming up); measured: 0 of them after
the fix, about 15 before it (the recorder kept the annotated frames no prediction needed)."""


def test_python_objects_do_not_grow_with_restarts(random_weights, rtsp_server, tmp_path):
    config = restarting_config(random_weights, rtsp_server(ENDING_STREAM), None)
    runner = RestartingRunner(config, RESTARTS, COUNT_AT)
    report = runner.run()
    assert sum(p.frames for p in report.progress.values()) >= RESTARTS, "frames flowed each time"
    first, *_, last = (runner.objects[k] for k in COUNT_AT)
    growth = (last - first) / (COUNT_AT[-1] - COUNT_AT[0])
    assert growth < GROWTH_PER_RESTART, runner.objects
