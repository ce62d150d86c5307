"""The recorder tells annotated frames live mode's gate skipped (by design) from lost events.

Events travel over real ZeroMQ sockets on loopback into ``run.py record``. Frames the admission
gate drops are never built into events, so ``seq`` stays gap-free while ``frame_index`` jumps;
events lost on the way leave a gap in ``seq``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import pytest

from cli.main import main
from parsing.events import EventSequencer, encode
from parsing.results import (
    ClipResult,
    FrameResult,
    HumanResult,
    PartResult,
    PartState,
    StreamStatus,
)
from pipeline.recorder import Recorder
from tps.formats import read_pred
from tps.vocabulary import PART_TYPES, frame_key
from transport.zmq import EventPublisher

WAIT_S = 5.0
FRAMES = 20  # annotated: 0, 5, 10, 15
KEYPOINTS = tuple((float(i), float(i), 1.0) for i in range(17))


def human() -> HumanResult:
    parts = {"head": PartResult((12.0, 0.0, 18.0, 8.0), 0.8, "bend", 0.5)}
    return HumanResult((0.0, 0.0, 40.0, 90.0), 0.95, KEYPOINTS, parts, track_id=1)


def frame(stream: str, index: int) -> FrameResult:
    return FrameResult(stream, index, index * 1000, 2, 64, 96, (human(),), None)


def clip(stream: str) -> ClipResult:
    states = {name: PartState("bend", 0.7) for name in PART_TYPES}
    return ClipResult(stream, 0, FRAMES - 1, 9, "lunge", 0.6, (("lunge", 0.6),), states)


def messages(stream: str, gate_dropped: Iterable[int], lost: Iterable[int]) -> list[tuple]:
    """One stream's encoded messages: frames the gate dropped are never built (no seq taken);
    frames in `lost` are built (they take their seq) but not sent, as if lost on the way."""
    sequencer = EventSequencer()
    gate_dropped, lost = set(gate_dropped), set(lost)
    sent = []

    def build(result, send=True):
        topic, event = sequencer.build(result)
        if send:
            sent.append((topic, encode(event)))

    build(StreamStatus(stream, "playing", "synthetic", 1))
    for index in range(FRAMES):
        if index not in gate_dropped:
            build(frame(stream, index), send=index not in lost)
    build(clip(stream))
    build(StreamStatus(stream, "eos", "", 3))
    return sent


def record(tmp_path, sent: list[tuple], caplog) -> list[logging.LogRecord]:
    """Publish `sent` on loopback, record it with ``run.py record``; the recorder's log."""
    publisher = EventPublisher("tcp://127.0.0.1:*")

    def publish() -> None:
        with publisher:
            if publisher.wait_for_subscriber(WAIT_S):
                for message in sent:
                    publisher.publish(*message)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    with caplog.at_level(logging.INFO, logger="pipeline.recorder"):
        assert main(["record", publisher.endpoint, "--out", str(tmp_path), "--timeout", "5"]) == 0
    thread.join(WAIT_S)
    return [r for r in caplog.records if r.name == "pipeline.recorder"]


def test_gate_skipped_frames_are_not_called_dropped_events(tmp_path, caplog):
    # The gate dropped frames 3, 5, 6, 10 and 11: annotated 5 and 10 (img_00006, img_00011).
    logs = record(tmp_path, messages("cam0", gate_dropped=(3, 5, 6, 10, 11), lost=()), caplog)
    assert sorted(read_pred(tmp_path).parts["cam0"]) == [frame_key(0), frame_key(15)]
    assert [(r.levelno, r.getMessage()) for r in logs] == [
        (
            logging.INFO,
            "stream cam0: 2 of 4 annotated frames never published, by design (live mode's "
            "admission gate skips frames; no event was lost), so they have no prediction",
        )
    ]
    assert not any("dropped" in r.getMessage() or "lost with" in r.getMessage() for r in logs)


def test_lost_events_are_told_apart_from_gate_skips(tmp_path, caplog):
    # The gate dropped frame 10 (annotated); the events of frames 5 (annotated) and 6 were lost.
    logs = record(tmp_path, messages("cam0", gate_dropped=(10,), lost=(5, 6)), caplog)
    assert sorted(read_pred(tmp_path).parts["cam0"]) == [frame_key(0), frame_key(15)]
    assert [(r.levelno, r.getMessage()) for r in logs] == [
        (
            logging.INFO,
            "stream cam0: 1 of 4 annotated frames never published, by design (live mode's "
            "admission gate skips frames; no event was lost), so they have no prediction",
        ),
        (
            logging.WARNING,
            "stream cam0: 1 of 4 annotated frames lost with 2 frame events that never arrived "
            "(gaps in seq)",
        ),
    ]


def test_every_frame_published_logs_nothing(tmp_path, caplog):
    logs = record(tmp_path, messages("cam0", gate_dropped=(), lost=()), caplog)
    assert len(read_pred(tmp_path).parts["cam0"]) == 4
    assert logs == []


@pytest.mark.parametrize(
    ("indices", "skipped"),
    [
        pytest.param([7, 8], 2, id="first-frames-gated"),  # 0 and 5 before the first event
        pytest.param([0, 4, 6, 9, 16], 3, id="every-gap"),  # 5 (between 4 and 6), 10 and 15
        pytest.param([0, 5, 10], 0, id="none"),
    ],
)
def test_skipped_annotated_frames_counted_from_real_events(indices, skipped, caplog):
    sequencer = EventSequencer()
    recorder = Recorder()
    for index in indices:
        recorder.add(sequencer.build(frame("s", index))[1])
    recorder.add(sequencer.build(clip("s"))[1])
    with caplog.at_level(logging.INFO, logger="pipeline.recorder"):
        recorder.prediction()
    texts = [r.getMessage() for r in caplog.records if r.name == "pipeline.recorder"]
    expected = indices[-1] // 5 + 1
    if skipped:
        assert texts == [
            f"stream s: {skipped} of {expected} annotated frames never published, by design "
            "(live mode's admission gate skips frames; no event was lost), so they have no "
            "prediction"
        ]
    else:
        assert texts == []
