"""`run.py subscribe` and `run.py record` against a real publisher on loopback."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cli.main import main
from parsing.events import EventSequencer, encode, validate
from parsing.results import (
    ClipResult,
    FrameResult,
    HumanResult,
    PartResult,
    PartState,
    StreamStatus,
)
from tps.vocabulary import PART_TYPES
from transport.zmq import EventPublisher

formats = pytest.importorskip("tps.formats")

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 5.0
KEYPOINTS = tuple((float(i), float(i), 1.0) for i in range(17))


def human(state: str | None) -> HumanResult:
    score = None if state is None else 0.5
    parts = {
        "left_arm": PartResult((10.0, 10.0, 20.0, 30.0), 0.9, state, score),
        "head": PartResult((12.0, 0.0, 18.0, 8.0), 0.8, state, score),
    }
    return HumanResult((0.0, 0.0, 40.0, 90.0), 0.95, KEYPOINTS, parts, track_id=1)


def clip(stream: str, label: str, state: str, end_frame: int) -> ClipResult:
    states = {name: PartState(state, 0.7) for name in PART_TYPES}
    return ClipResult(stream, 0, end_frame, 9, label, 0.6, ((label, 0.6),), states)


def stream_results(stream: str, frames: int, clips: Sequence[tuple[int, str, str]]) -> list:
    """Status, frames and clips of one finite stream, as a parser would produce them."""
    results: list = [StreamStatus(stream, "playing", "synthetic", 1)]
    latest = None
    decisions = {frame: (label, state) for frame, label, state in clips}
    for index in range(frames):
        state = None if latest is None else latest.part_states["arm"].state
        results.append(FrameResult(stream, index, index * 1000, 2, 64, 96, (human(state),), latest))
        if index in decisions:
            latest = clip(stream, *decisions[index], end_frame=index)
            results.append(latest)
    results.append(StreamStatus(stream, "eos", "", 3))
    return results


def start_publishing(results: list) -> tuple[str, threading.Thread]:
    """Bind a publisher on a free port; a thread publishes `results` once a subscriber is there."""
    publisher = EventPublisher("tcp://127.0.0.1:*")
    sequencer = EventSequencer()

    def publish() -> None:
        with publisher:
            if publisher.wait_for_subscriber(WAIT_S):
                for result in results:
                    publisher.publish(*map_encode(sequencer.build(result)))

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return publisher.endpoint, thread


def map_encode(message: tuple[str, dict]) -> tuple[str, bytes]:
    return message[0], encode(message[1])


@pytest.fixture
def two_streams() -> Iterator[tuple[str, int]]:
    cam0 = stream_results("cam0", 12, [(4, "lunge", "bend"), (9, "capoeira", "swing")])
    cam1 = stream_results("cam1", 3, [])
    # Interleaved as two live streams are: both have started before either ends.
    pairs = itertools.zip_longest(cam0, cam1)
    results = [result for pair in pairs for result in pair if result is not None]
    endpoint, thread = start_publishing(results)
    yield endpoint, len(results)
    thread.join(WAIT_S)


def test_subscribe_until_eos_prints_every_event(two_streams, capsys) -> None:
    endpoint, published = two_streams
    assert main(["subscribe", endpoint, "--until-eos", "--timeout", str(WAIT_S)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == published
    for line in lines:
        message = json.loads(line)
        validate(message["event"])
        stream, event_type = message["topic"].split("/")[1:]
        assert (message["event"]["stream"], message["event"]["type"]) == (stream, event_type)
    assert json.loads(lines[-1])["event"]["state"] == "eos"


def test_subscribe_count_and_topic(two_streams, capsys) -> None:
    endpoint, _ = two_streams
    argv = ["subscribe", endpoint, "--topic", "tps/cam0/clip", "--count", "2", "--timeout", "5"]
    assert main(argv) == 0
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert [(event["type"], event["action"]["label"]) for event in events] == [
        ("clip", "lunge"),
        ("clip", "capoeira"),
    ]


def test_subscribe_stops_on_timeout(capsys) -> None:
    with EventPublisher("tcp://127.0.0.1:*") as silent:
        assert main(["subscribe", silent.endpoint, "--timeout", "0.2"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("states", "expected_verb"),
    [pytest.param("clip", "swing", id="clip-states"), pytest.param("frame", None, id="frame")],
)
def test_record_writes_official_files(two_streams, tmp_path, capsys, states, expected_verb) -> None:
    endpoint, _ = two_streams
    argv = ["record", endpoint, "--out", str(tmp_path), "--timeout", "5", "--states", states]
    assert main(argv) == 0
    assert "recorded 1 videos, 3 annotated frames" in capsys.readouterr().out
    prediction = formats.read_pred(tmp_path)
    assert prediction.labels == {"cam0": "capoeira"}  # cam1 never had a clip decision
    frames = prediction.parts["cam0"]
    assert sorted(frames) == ["img_00001.json", "img_00006.json", "img_00011.json"]
    for key, frame_verbs in [("img_00001.json", None), ("img_00006.json", "bend")]:
        (person,) = frames[key]
        assert person.box == (0.0, 0.0, 40.0, 90.0)
        verbs = {name: part.verbs for name, part in person.parts.items()}
        verb = expected_verb or frame_verbs
        assert verbs == ({} if verb is None else {"left_arm": (verb,), "head": (verb,)})
    assert frames["img_00011.json"][0].parts["left_arm"].boxes == ((10.0, 10.0, 20.0, 30.0),)


def test_record_without_clip_events_fails(tmp_path, capsys) -> None:
    endpoint, thread = start_publishing(stream_results("cam0", 2, []))
    assert main(["record", endpoint, "--out", str(tmp_path), "--timeout", "5"]) == 1
    thread.join(WAIT_S)
    assert "error: no stream with a clip event among 4 events" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["subscribe", "tcp://nowhere"], id="subscribe"),
        pytest.param(["record", "tcp://nowhere", "--out", "unused"], id="record"),
    ],
)
def test_bad_endpoint_is_one_line_exit_2(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == "error: endpoint 'tcp://nowhere': expected tcp://HOST:PORT with a port 0-65535\n"


def test_run_py_entry_point_reports_bad_endpoint() -> None:
    completed = subprocess.run(
        [sys.executable, "run.py", "subscribe", "udp://127.0.0.1:1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: endpoint 'udp://127.0.0.1:1': expected [@|>]tcp://")
