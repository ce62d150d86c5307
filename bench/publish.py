"""Event publishing: frame events per second through our publisher against raw pyzmq.

The message is a realistic frame event: 3 humans with 17 keypoints and 10 parts each, with states
and a latest clip decision. A subscriber thread (a plain pyzmq SUB socket on 127.0.0.1) receives
every message; a run's rate is messages / (first send -> last message received). Three senders,
interleaved run by run:

- ``raw``: a pyzmq XPUB socket sending the event's bytes, encoded once beforehand;
- ``publisher``: `transport.zmq.EventPublisher.publish` with the same bytes (our socket
  options, lock and counters);
- ``sink``: `plugins.sinks.EventSink.send` with the `FrameResult`, which numbers, builds and
  msgpack-encodes the event every time (what the ``tpspublish`` element does per frame).

Every socket queues without limit (hwm 0) so nothing is dropped and every message is counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq

from bench.common import median
from parsing.events import EventSequencer, encode
from parsing.results import ClipResult, FrameResult, HumanResult, PartResult, PartState
from plugins.hooks import Hooks
from plugins.sinks import EventSink
from tps.vocabulary import PART_TYPES, PARTS
from transport.zmq import EventPublisher

HUMANS = 3
STREAM = "bench"
ENDPOINT = "tcp://127.0.0.1:*"
SUBSCRIBE_TIMEOUT_S = 5.0
RECEIVE_TIMEOUT_S = 60.0
SENDERS = ("raw", "publisher", "sink")
FRAME_SIZE = (1280, 720)
NUM_KEYPOINTS = 17


class PublishBenchError(RuntimeError):
    """The subscriber did not receive every message in time."""


def realistic_frame() -> FrameResult:
    """A 1280x720 frame with `HUMANS` people, 17 keypoints and 10 parts each, with states."""
    part_states = {name: PartState("bend", 0.8) for name in PART_TYPES}
    clip = ClipResult(
        stream=STREAM,
        start_frame=0,
        end_frame=31,
        wall_ns=time.time_ns(),
        label="lunge",
        score=0.71,
        top5=(("lunge", 0.71), ("push_up", 0.12), ("pull_ups", 0.08)),
        part_states=part_states,
    )
    humans = []
    for index in range(HUMANS):
        x = 100.0 + 400.0 * index
        keypoints = tuple(
            (x + 5.0 * k + 0.25, 120.0 + 20.0 * k + 0.5, 0.9) for k in range(NUM_KEYPOINTS)
        )
        parts = {
            name: PartResult((x + 3.0 * p, 100.0 + 40.0 * p, x + 60.5, 160.25 + 40.0 * p), 0.77,
                             "bend", 0.8)
            for p, name in enumerate(PARTS)
        }  # fmt: skip
        humans.append(HumanResult((x, 90.0, x + 200.5, 560.25), 0.93, keypoints, parts))
    return FrameResult(
        stream=STREAM,
        frame_index=1234,
        pts_ns=49_360_000_000,
        wall_ns=time.time_ns(),
        width=FRAME_SIZE[0],
        height=FRAME_SIZE[1],
        humans=tuple(humans),
        latest_clip=clip,
    )


@dataclass
class _Receiver:
    """A SUB socket counting messages in a thread; `done_at` is when the last one came."""

    endpoint: str
    expected: int
    done_at: float | None = None

    def __post_init__(self) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"tps/")
        self.socket.connect(self.endpoint)
        self.thread = threading.Thread(target=self._receive, name="bench-subscriber", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        received = 0
        while received < self.expected:
            if not self.socket.poll(int(RECEIVE_TIMEOUT_S * 1000)):
                return
            self.socket.recv_multipart()
            received += 1
        self.done_at = time.perf_counter()

    def finish(self) -> float:
        """When the last message arrived (perf_counter seconds)."""
        self.thread.join(RECEIVE_TIMEOUT_S)
        self.socket.close()
        self.context.term()
        if self.done_at is None:
            raise PublishBenchError(f"subscriber on {self.endpoint}: not every message arrived")
        return self.done_at


def _raw_rate(topic: bytes, payload: bytes, count: int) -> float:
    context = zmq.Context()
    socket = context.socket(zmq.XPUB)
    socket.setsockopt(zmq.SNDHWM, 0)
    try:
        socket.bind(ENDPOINT)
        receiver = _Receiver(socket.getsockopt_string(zmq.LAST_ENDPOINT), count)
        if not socket.poll(int(SUBSCRIBE_TIMEOUT_S * 1000)):
            raise PublishBenchError("raw pyzmq: no subscription arrived")
        socket.recv()  # the subscription message
        started = time.perf_counter()
        for _ in range(count):
            socket.send_multipart((topic, payload))
        return count / (receiver.finish() - started)
    finally:
        socket.close(linger=0)
        context.term()


def _our_rate(sender: Callable[[EventPublisher], Callable[[], object]], count: int) -> float:
    """Rate of `sender(publisher)()` calls, each sending one message through a fresh publisher."""
    with EventPublisher(ENDPOINT, hwm=0) as publisher:
        receiver = _Receiver(publisher.endpoint, count)
        if not publisher.wait_for_subscriber(SUBSCRIBE_TIMEOUT_S):
            raise PublishBenchError(f"publisher on {publisher.endpoint}: no subscription arrived")
        send = sender(publisher)
        started = time.perf_counter()
        for _ in range(count):
            send()
        return count / (receiver.finish() - started)


def _sink_sender(publisher: EventPublisher, frame: FrameResult) -> Callable[[], object]:
    """Sends `frame` through a fresh `EventSink` on `publisher` (build, encode, publish)."""
    sink = EventSink(publisher, Hooks())
    return lambda: sink.send(frame)


def bench_publish(count: int, repeats: int) -> dict[str, object]:
    """Median messages per second of each sender, and the ratios to raw pyzmq."""
    frame = realistic_frame()
    topic_name, event = EventSequencer().build(frame)
    payload = encode(event)
    topic = topic_name.encode()
    rates: dict[str, list[float]] = {sender: [] for sender in SENDERS}
    started = time.perf_counter()
    for _ in range(repeats):
        rates["raw"].append(_raw_rate(topic, payload, count))
        rates["publisher"].append(
            _our_rate(lambda publisher: lambda: publisher.publish(topic_name, payload), count)
        )
        rates["sink"].append(_our_rate(lambda publisher: _sink_sender(publisher, frame), count))
    encode_started = time.perf_counter()
    sequencer = EventSequencer()
    for _ in range(count):
        encode(sequencer.build(frame)[1])
    encode_per_s = count / (time.perf_counter() - encode_started)
    medians = {sender: median(values) for sender, values in rates.items()}
    return {
        "humans": HUMANS,
        "parts_per_human": len(PARTS),
        "payload_bytes": len(payload),
        "messages": count,
        "repeats": repeats,
        **{f"{sender}_per_s": value for sender, value in medians.items()},
        "build_and_encode_only_per_s": encode_per_s,
        "publisher_over_raw": medians["publisher"] / medians["raw"],
        "sink_over_raw": medians["sink"] / medians["raw"],
        "wall_s": time.perf_counter() - started,
    }
