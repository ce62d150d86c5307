"""Supervision with real failures: refused and dropped RTSP connections, graceful shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pipeline.runner import Runner
from pipeline.sources import iterate_frames
from tests.pipeline.test_runner import by_stream, free_endpoint, make_config, run_with_subscriber
from transport.zmq import EventSubscriber

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("rtsp_serve.py")
WAIT_S = 60.0
INTERRUPT_AFTER_S = 3.0
SETTLE_S = 1.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def states(events: list, stream: str) -> list[str]:
    return [e["state"] for e in by_stream(events, stream, "status")]


def test_refused_rtsp_retries_with_back_off_then_fails_alone(random_weights, tmp_path):
    refused = f"rtsp://127.0.0.1:{free_port()}/none?transport=tcp"
    sources = [
        {"id": "cam", "uri": refused},
        {"id": "synthetic", "uri": "synth://?seed=2&people=1&frames=8"},
    ]
    reconnect = {"initial_delay_s": 0.05, "max_delay_s": 0.2, "max_attempts": 2}
    config = make_config(random_weights, sources, tmp_path, reconnect=reconnect)
    runner, events = run_with_subscriber(config)
    assert states(events, "cam") == [
        "starting", "reconnecting", "starting", "reconnecting", "starting", "error", "stopped",
    ]  # fmt: skip
    assert by_stream(events, "cam", "status")[1]["detail"].startswith(
        f"{refused}: cannot open or connect ("
    )
    assert runner.report.states["cam"] == "error"
    assert states(events, "synthetic")[-1] == "eos"
    assert len(by_stream(events, "synthetic", "frame")) == 8
    assert (
        'tps_source_reconnects_total{stream="cam"} 2.0' in runner.report.metrics.render().decode()
    )


class Server:
    """The RTSP server in its own process, to be killed and started again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), str(self.port)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def test_rtsp_server_killed_and_restarted_resumes_events(random_weights, tmp_path):
    server = Server(free_port())
    server.start()
    sources = [{"id": "cam", "uri": f"rtsp://127.0.0.1:{server.port}/live?transport=tcp"}]
    reconnect = {"initial_delay_s": 0.2, "max_delay_s": 1.0}
    config = make_config(random_weights, sources, tmp_path, mode="live", reconnect=reconnect)
    runner = Runner(config)
    events: list[tuple[str, dict]] = []
    subscriber = EventSubscriber(config.publish.endpoint)
    seen_reconnecting, resumed, ended = threading.Event(), threading.Event(), threading.Event()

    def watch() -> None:
        frames_after = 0
        for topic, event in subscriber.events(idle_timeout_s=WAIT_S, until_final=True):
            events.append((topic, event))
            if event["type"] == "status" and event["state"] == "reconnecting":
                seen_reconnecting.set()
            if event["type"] == "frame" and seen_reconnecting.is_set():
                frames_after += 1
                if frames_after >= 5:
                    resumed.set()
        ended.set()

    threading.Thread(target=watch, daemon=True).start()
    run = threading.Thread(target=runner.run, daemon=True)
    run.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while len(by_stream(events, "cam", "frame")) < 5:
            assert time.monotonic() < deadline, "no frames from the RTSP server"
            time.sleep(0.1)
        server.kill()
        assert seen_reconnecting.wait(WAIT_S), "the runner never noticed the server die"
        server.start()
        assert resumed.wait(WAIT_S), "events did not resume after the server came back"
    finally:
        runner.stop()
        run.join(WAIT_S)
        server.kill()
    assert ended.wait(WAIT_S)
    frames = [e["frame_index"] for e in by_stream(events, "cam", "frame")]
    assert frames == sorted(frames) and len(set(frames)) == len(frames), "numbering goes on"
    assert states(events, "cam")[-1] == "stopped"
    assert runner.metrics.render().decode().count('tps_source_reconnects_total{stream="cam"}') == 1


def test_sigint_flushes_publishes_stopped_and_leaves_a_playable_video(random_weights, tmp_path):
    config = make_config(
        random_weights,
        [{"id": "long", "uri": "synth://?seed=1&people=1&frames=100000"}],
        tmp_path / "out",
        mode="live",
        video={"fps": 10},
    )
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    subscriber = EventSubscriber(config.publish.endpoint)
    process = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "run", "-c", str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = []
    interrupted = False
    deadline = time.monotonic() + 10 * WAIT_S
    try:
        for topic, event in subscriber.events(idle_timeout_s=WAIT_S, until_final=True):
            events.append((topic, event))
            assert time.monotonic() < deadline, "the run did not end after SIGINT"
            # `>=`, once: live mode's gate drops frames, so frame 10 itself may never be published
            if not interrupted and event["type"] == "frame" and event["frame_index"] >= 10:
                process.send_signal(signal.SIGINT)
                interrupted = True
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
        subscriber.close()
    assert process.returncode == 0, err
    assert states(events, "long")[-1] == "stopped"
    video = tmp_path / "out" / "long.mp4"
    frames = sum(1 for _ in iterate_frames(str(video)))
    published = sum(1 for _, event in events if event["type"] == "frame")
    assert frames >= published > 0, "the annotated MP4 is finished and holds every parsed frame"
    assert free_endpoint()  # the port of the run is free again


class _Interrupted(Exception):
    """What a timer raises in the main thread, as a test timeout or an interrupt does."""


def test_a_run_interrupted_by_an_exception_leaves_no_stream_running(random_weights):
    """An exception out of the supervision loop (pytest's timeout, KeyboardInterrupt) tears every
    stream down: a pipeline left playing went on using the shared side table and networks."""
    sources = [{"id": "endless", "uri": "synth://?seed=1&people=1"}]
    publish = {"endpoint": free_endpoint(), "wait_for_subscriber_s": 0}
    runner = Runner(make_config(random_weights, sources, None, publish=publish))

    def interrupt(_signum: int, _frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, INTERRUPT_AFTER_S)
    try:
        runner.run()
        raise AssertionError("the endless stream ended by itself")
    except _Interrupted:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert runner.frames_in["endless"] > 0, "interrupted before it played: raise INTERRUPT_AFTER_S"
    time.sleep(SETTLE_S)
    assert runner.context.table.in_flight("endless") == 0  # stopped: its stamp element cleared it
