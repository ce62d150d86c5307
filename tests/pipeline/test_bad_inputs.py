"""Bad inputs as users and networks deliver them: each gives one clear line and spares the rest.

Covered elsewhere, not repeated here: a file that is not video
(test_runner.test_a_failing_stream_does_not_stop_the_others); a missing file
(test_sources.test_missing_file_is_named, and here through the CLI); a config with an unknown
key, a wrong type or a bad URI (test_config.test_bad_config_is_one_line_naming_file_and_key);
missing weights (test_config.test_missing_weights_fail_before_any_stream_starts); a metrics
address in use at the server (test_metrics.test_address_in_use_is_one_clear_line, and here
through the CLI).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
import zmq

import plugins.sinks
import transport.zmq
from cli.main import main
from media.gst import init
from pipeline.runner import Runner
from tests.pipeline.test_runner import by_stream, make_config, run_with_subscriber
from tps.synth.encode import encode_h264
from transport.zmq import Endpoint, EventPublisher, EventSubscriber

from gi.repository import Gst  # isort: skip  (media.gst has required the version)

VIDEO_SIZE = (96, 64)
"""The configured size every source is normalised to (width, height)."""
CLIP_SIZE = (128, 96)
CLIP_FRAMES = 30
CLIP_FPS = 10
NOISE_BYTES = 2000
RESIZE_SEGMENTS = (((160, 120), 10), ((96, 72), 10))
"""Two H.264 segments of different sizes, (width, height) and frames, back to back in one file."""
GOOD_FRAMES = 12
GST_WAIT_S = 30
SEED = 0


def _launch_to_eos(line: str) -> None:
    init()
    pipeline = Gst.parse_launch(line)
    pipeline.set_state(Gst.State.PLAYING)
    wanted = Gst.MessageType.EOS | Gst.MessageType.ERROR
    message = pipeline.get_bus().timed_pop_filtered(GST_WAIT_S * Gst.SECOND, wanted)
    pipeline.set_state(Gst.State.NULL)
    assert message is not None and message.type == Gst.MessageType.EOS, line


def make_bad_files(folder: Path) -> dict[str, Path]:
    """A valid MP4 spoilt in the ways files get spoilt, plus files GStreamer cannot decode."""
    rng = np.random.default_rng(SEED)
    width, height = CLIP_SIZE
    frames = [
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8) // 4 + index * 4
        for index in range(CLIP_FRAMES)
    ]
    good = folder / "good.mp4"
    encode_h264(frames, good, CLIP_FPS)
    data = good.read_bytes()
    files = {"half": folder / "half.mp4", "noise": folder / "noise.mp4"}
    files["half"].write_bytes(data[: len(data) // 2])
    spoilt = bytearray(data)
    start = len(data) // 3
    spoilt[start : start + NOISE_BYTES] = rng.integers(0, 256, NOISE_BYTES, np.uint8).tobytes()
    files["noise"].write_bytes(bytes(spoilt))
    # Matroska with an H.264 track whose codec id (same length) no decoder knows
    mkv = folder / "h264.mkv"
    _launch_to_eos(f"filesrc location={good} ! qtdemux ! h264parse ! matroskamux"
                   f" ! filesink location={mkv}")  # fmt: skip
    codec = b"V_MPEG4/ISO/AVC"
    assert mkv.read_bytes().count(codec) == 1
    files["nodecoder"] = folder / "nodecoder.mkv"
    files["nodecoder"].write_bytes(mkv.read_bytes().replace(codec, b"V_NOPE4/ISO/AVC"))
    # an H.264 elementary stream whose frame size changes halfway
    segments = []
    for index, ((seg_width, seg_height), count) in enumerate(RESIZE_SEGMENTS):
        segment = folder / f"segment{index}.h264"
        _launch_to_eos(
            f"videotestsrc num-buffers={count} pattern=ball"
            f" ! video/x-raw,width={seg_width},height={seg_height},framerate={CLIP_FPS}/1"
            f" ! x264enc key-int-max=5 ! video/x-h264,stream-format=byte-stream"
            f" ! filesink location={segment}"
        )
        segments.append(segment.read_bytes())
    files["resize"] = folder / "resize.h264"
    files["resize"].write_bytes(b"".join(segments))
    return files


@pytest.fixture(scope="module")
def mixed_run(random_weights, tmp_path_factory):
    """One offline run of every bad stream beside a good synthetic one."""
    folder = tmp_path_factory.mktemp("bad_inputs")
    files = make_bad_files(folder)
    sources = [{"id": name, "uri": str(path)} for name, path in files.items()]
    sources += [
        {"id": "camera", "uri": "v4l2:///dev/video99"},
        {"id": "good", "uri": f"synth://?seed=1&people=1&frames={GOOD_FRAMES}"},
    ]
    width, height = VIDEO_SIZE
    config = make_config(
        random_weights,
        sources,
        folder / "out",
        video={"width": width, "height": height},
        reconnect={"max_attempts": 0},
        output={"dir": None},
    )
    runner, events = run_with_subscriber(config)
    return runner, events


def final_states(events: list, stream: str) -> list[str]:
    return [e["state"] for e in by_stream(events, stream, "status")]


def error_detail(events: list, stream: str) -> str:
    errors = [e["detail"] for e in by_stream(events, stream, "status") if e["state"] == "error"]
    assert len(errors) == 1, errors
    assert "\n" not in errors[0]
    return errors[0]


def test_the_good_stream_is_untouched_by_its_bad_neighbours(mixed_run):
    runner, events = mixed_run
    frames = by_stream(events, "good", "frame")
    assert [e["frame_index"] for e in frames] == list(range(GOOD_FRAMES))
    assert final_states(events, "good")[-1] == "eos"
    assert sorted(runner.report.failed) == ["camera", "half", "nodecoder"]


@pytest.mark.parametrize(
    ("stream", "words"),
    [
        pytest.param("half", "no playable streams", id="mp4-cut-in-half"),
        pytest.param("nodecoder", "missing a plug-in", id="codec-without-decoder"),
        pytest.param("camera", "/dev/video99", id="camera-missing"),
    ],
)
def test_unplayable_source_is_one_error_line_then_stopped(mixed_run, stream, words):
    runner, events = mixed_run
    assert final_states(events, stream)[-2:] == ["error", "stopped"]
    detail = error_detail(events, stream)
    uri = next(source.uri for source in runner.config.sources if source.id == stream)
    assert detail.startswith(f"{uri}: ") and words in detail, detail
    assert runner.report.states[stream] == "error", "a source that never played failed"
    assert not by_stream(events, stream, "frame")


def test_random_bytes_inside_a_stream_are_survived(mixed_run):
    _, events = mixed_run
    frames = by_stream(events, "noise", "frame")
    assert 0 < len(frames) <= CLIP_FRAMES
    assert [e["frame_index"] for e in frames] == list(range(len(frames)))
    assert final_states(events, "noise")[-1] == "eos"


def test_resolution_change_mid_stream_keeps_the_configured_size(mixed_run):
    _, events = mixed_run
    frames = by_stream(events, "resize", "frame")
    assert len(frames) == sum(count for _, count in RESIZE_SEGMENTS), "frames past the change"
    assert {(e["width"], e["height"]) for e in frames} == {VIDEO_SIZE}
    assert final_states(events, "resize")[-1] == "eos"


# -- refused before any stream starts: one line on stderr, exit 2 ------------------------------
def write_config(path: Path, random_weights: dict[str, Path], **changes) -> Path:
    config = make_config(
        random_weights, [{"id": "s", "uri": "synth://?seed=1&people=1&frames=2"}], path.parent
    )
    data = config.model_dump(mode="json")
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[section] = value
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(capsys, config: Path, *extra: str) -> str:
    assert main(["run", "-c", str(config), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


class Payload:
    """Unpickling this runs ``touch MARKER``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_runs_code_is_refused_and_never_runs(random_weights, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    weights = tmp_path / "pose.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": Payload(marker)}, weights)
    parser = {
        "person": {"weights": str(random_weights["person"])},
        "pose": {"weights": str(weights)},
        "parts": {"weights": str(random_weights["parts"])},
        "clip": {"networks": [{"weights": str(random_weights["csn"])}]},
    }
    config = write_config(tmp_path / "pipeline.yaml", random_weights, parser=parser)
    err = run_cli(capsys, config)  # the pipeline reads only our safetensors format
    assert "expected our format" in err and str(weights) in err
    # converting is where a .pth is unpickled: weights-only, so the payload is refused
    converted = tmp_path / "pose.safetensors"
    assert main(["models", "convert", str(weights), str(converted), "--arch", "hrnet_tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert str(weights) in err and "could run code" in err
    assert not marker.exists() and not converted.exists(), "the payload must never run"


def test_weights_of_another_architecture_are_named(random_weights, tmp_path, capsys):
    parser = {
        "person": {"weights": str(random_weights["person"])},
        "pose": {"weights": str(random_weights["person"])},  # a YOLOF detector as the pose net
        "parts": {"weights": str(random_weights["parts"])},
        "clip": {"networks": [{"weights": str(random_weights["csn"])}]},
    }
    config = write_config(tmp_path / "pipeline.yaml", random_weights, parser=parser)
    err = run_cli(capsys, config)
    assert f"parser.pose weights {random_weights['person']}: expected a hrnet" in err
    assert "got architecture 'yolof_tiny'" in err


def test_missing_video_file_is_named(random_weights, tmp_path, capsys):
    config = write_config(tmp_path / "pipeline.yaml", random_weights)
    missing = tmp_path / "nowhere.mp4"
    err = run_cli(capsys, config, "--source", str(missing))
    assert "no such file" in err and str(missing) in err


def test_event_address_in_use_is_refused(random_weights, tmp_path, capsys):
    context = zmq.Context()
    holder = context.socket(zmq.PUB)
    try:
        holder.bind("tcp://127.0.0.1:*")
        endpoint = holder.getsockopt_string(zmq.LAST_ENDPOINT)
        config = write_config(tmp_path / "pipeline.yaml", random_weights)
        err = run_cli(capsys, config, "--publish", endpoint)
        assert endpoint in err and "address already in use" in err
    finally:
        context.destroy(linger=0)


def test_metrics_port_in_use_is_refused(random_weights, tmp_path, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        config = write_config(tmp_path / "pipeline.yaml", random_weights)
        err = run_cli(capsys, config, "--metrics", address)
        assert address in err and "in use" in err


# -- misbehaving subscribers in live mode ------------------------------------------------------
LIVE_FRAMES = 40
LIVE_FPS = 20
FLAP_RECEIVE_S = 0.02


def live_config(random_weights, tmp_path: Path, **extra):
    return make_config(
        random_weights,
        [{"id": "live", "uri": f"synth://?seed=2&people=1&frames={LIVE_FRAMES}"}],
        tmp_path,
        mode="live",
        video={"fps": LIVE_FPS},
        output={"dir": None},
        **extra,
    )


def test_a_subscriber_that_comes_and_goes_does_not_disturb_the_run(random_weights, tmp_path):
    config = live_config(random_weights, tmp_path)
    stop = threading.Event()
    visits = {"connections": 0, "events": 0}

    def flap() -> None:
        while not stop.is_set():
            with EventSubscriber(config.publish.endpoint) as subscriber:
                visits["connections"] += 1
                visits["events"] += subscriber.receive(FLAP_RECEIVE_S) is not None

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    try:
        runner, events = run_with_subscriber(config)
    finally:
        stop.set()
        flapper.join(GST_WAIT_S)
    assert runner.report.states == {"live": "eos"} and not runner.report.failed
    assert visits["connections"] > 1 and visits["events"] > 0
    assert by_stream(events, "live", "frame"), "the steady subscriber kept receiving"


STALLED_BUF = 1024
"""SO_SNDBUF of the run's socket and SO_RCVBUF of the subscriber that never reads (the kernel
rounds both up to its minimum, a few KB). Left alone, Linux grows the publisher's TCP send buffer
to ~1 MB for a stalled peer (measured: 1.09 MB queued there), which a short test never fills: its
~30 events of ~1.5 KB would all be accepted."""
STALLED_HWM = 1
"""The run's queue per subscriber: full after one unsent event."""
FILLER = bytes(1 << 20)
"""Published before the run starts until the stalled queue is full (not through the run's sink,
so the metric counts only the run's own events)."""
FILL_REFUSALS = 3
FILL_SETTLE_S = 0.1


def test_a_subscriber_that_never_reads_never_blocks_the_run(random_weights, tmp_path, monkeypatch):
    config = live_config(random_weights, tmp_path)
    config = config.model_copy(
        update={"publish": config.publish.model_copy(update={"hwm": STALLED_HWM})}
    )
    context = zmq.Context()
    stalled = context.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 1)
    stalled.setsockopt(zmq.RCVBUF, STALLED_BUF)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")

    open_socket = transport.zmq._open

    def open_small(socket: zmq.Socket, endpoint: Endpoint) -> str:
        # before the bind: libzmq copies a socket's options into its listener when it binds
        socket.setsockopt(zmq.SNDBUF, STALLED_BUF)
        return open_socket(socket, endpoint)

    def publisher(endpoint: str, **options) -> EventPublisher:
        """The run's publisher, with the stalled subscriber listening before the first event (a
        live run does not wait for subscribers; events sent before it connects never queue)."""
        made = EventPublisher(endpoint, **options)
        stalled.connect(made.endpoint)
        assert made.wait_for_subscriber(GST_WAIT_S), "the stalled subscriber never subscribed"
        # Fill its queue first, so every event of the run meets a full queue however few a loaded
        # machine parses: a refusal that outlasts FILL_SETTLE_S is no longer ZeroMQ's I/O thread
        # being late (a filler far larger than the kernel buffers can never be written out).
        refused = 0
        while refused < FILL_REFUSALS:
            refused = 0 if made.publish("filler", FILLER) else refused + 1
            time.sleep(FILL_SETTLE_S if refused else 0)
        return made

    monkeypatch.setattr(transport.zmq, "_open", open_small)
    monkeypatch.setattr(plugins.sinks, "EventPublisher", publisher)
    try:
        report = Runner(config).run()  # returns: publish never waits for the reader
    finally:
        context.destroy(linger=0)
    assert report.states == {"live": "eos"} and not report.failed
    registry = report.metrics.registry
    assert registry.get_sample_value("tps_event_send_errors_total") > 0
    processed = registry.get_sample_value("tps_frames_processed_total", {"stream": "live"})
    dropped = registry.get_sample_value("tps_frames_dropped_total", {"stream": "live"})
    frames_in = registry.get_sample_value("tps_frames_in_total", {"stream": "live"})
    assert processed > 0 and processed + dropped == frames_in
