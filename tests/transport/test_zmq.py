"""The ZeroMQ publisher and subscriber over real loopback sockets (port 0, event-based waits)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import zmq

from parsing.events import EventSequencer, encode, validate
from parsing.results import StreamStatus
from tests.parsing.test_events import make_clip, make_frame
from transport.zmq import (
    CurveKeys,
    Endpoint,
    EventPublisher,
    EventSubscriber,
    PublisherError,
    parse_endpoint,
)

ANY_PORT = "tcp://127.0.0.1:*"
RECEIVE_TIMEOUT_S = 5.0
"""Generous upper bound for one message on loopback; tests never sleep, they wait on sockets."""


@pytest.fixture
def publisher() -> Iterator[EventPublisher]:
    with EventPublisher(ANY_PORT) as opened:
        yield opened


def status_message(stream: str, state: str, sequencer: EventSequencer) -> tuple[str, bytes]:
    topic, event = sequencer.build(StreamStatus(stream, state, "", 1))
    return topic, encode(event)


@pytest.mark.parametrize(
    ("text", "bind_by_default", "expected"),
    [
        pytest.param("tcp://127.0.0.1:5555", True, Endpoint("tcp://127.0.0.1:5555", True), id="b"),
        pytest.param("tcp://127.0.0.1:5555", False, Endpoint("tcp://127.0.0.1:5555", False)),
        pytest.param("@tcp://*:*", False, Endpoint("tcp://*:*", True), id="bind-any"),
        pytest.param(">tcp://host:1", True, Endpoint("tcp://host:1", False), id="connect"),
        pytest.param("ipc:///tmp/events", True, Endpoint("ipc:///tmp/events", True), id="ipc"),
        pytest.param(">inproc://events", True, Endpoint("inproc://events", False), id="inproc"),
    ],
)
def test_parse_endpoint(text: str, bind_by_default: bool, expected: Endpoint) -> None:
    assert parse_endpoint(text, bind_by_default=bind_by_default) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("127.0.0.1:5555", "or [@|>]inproc://NAME", id="no-transport"),
        pytest.param("udp://127.0.0.1:5555", "or [@|>]inproc://NAME", id="udp"),
        pytest.param("tcp://127.0.0.1", "with a port 0-65535 or '*'", id="no-port"),
        pytest.param("tcp://127.0.0.1:99999", "with a port 0-65535 or '*'", id="port-range"),
        pytest.param(">tcp://127.0.0.1:*", "tcp://HOST:PORT with a port 0-65535", id="connect-any"),
        pytest.param("@", "or [@|>]inproc://NAME", id="empty"),
    ],
)
def test_parse_endpoint_rejects(text: str, expected: str) -> None:
    with pytest.raises(PublisherError) as raised:
        parse_endpoint(text, bind_by_default=True)
    message = str(raised.value)
    assert message.startswith(f"endpoint {text!r}: expected ")
    assert message.endswith(expected)
    assert "\n" not in message


def test_every_event_type_arrives_valid(publisher: EventPublisher) -> None:
    sequencer = EventSequencer()
    results = [
        StreamStatus("cam0", "playing", "file:///a.mp4", 1),
        make_frame(),
        make_clip(),
        make_frame(make_clip()),
        StreamStatus("cam0", "eos", "", 2),
    ]
    with EventSubscriber(publisher.endpoint) as subscriber:
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        assert publisher.subscriptions == 1
        sent = [sequencer.build(result) for result in results]
        for topic, event in sent:
            assert publisher.publish(topic, encode(event))
        received = list(subscriber.events(idle_timeout_s=RECEIVE_TIMEOUT_S, until_final=True))
    for _, event in received:
        validate(event)
    assert received == sent
    assert (publisher.published, publisher.send_errors) == (len(results), 0)


def test_topic_filter(publisher: EventPublisher) -> None:
    sequencer = EventSequencer()
    with EventSubscriber(publisher.endpoint, topics=("tps/cam1/",)) as subscriber:
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        for stream in ("cam1", "cam10", "cam1"):
            publisher.publish(*status_message(stream, "playing", sequencer))
        received = list(subscriber.events(idle_timeout_s=0.3))
    assert [(event["stream"], event["seq"]) for _, event in received] == [("cam1", 0), ("cam1", 1)]


def test_publisher_connects_to_a_bound_subscriber() -> None:
    sequencer = EventSequencer()
    subscriptions: list[int] = []

    def publish(endpoint: str) -> None:
        with EventPublisher(">" + endpoint, wait_for_subscriber_s=RECEIVE_TIMEOUT_S) as publisher:
            subscriptions.append(publisher.subscriptions)
            publisher.publish(*status_message("cam0", "eos", sequencer))

    # A bound SUB socket takes in new connections while its owner polls it, as `record` does.
    with EventSubscriber("@" + ANY_PORT) as subscriber:
        assert subscriber.endpoint.startswith("tcp://127.0.0.1:")
        thread = threading.Thread(target=publish, args=(subscriber.endpoint,))
        thread.start()
        received = subscriber.receive(RECEIVE_TIMEOUT_S)
        thread.join()
    assert subscriptions == [1]
    assert received is not None and received[1]["state"] == "eos"


def test_wait_for_subscriber_is_bounded(publisher: EventPublisher) -> None:
    assert not publisher.wait_for_subscriber(0.1)
    assert publisher.subscriptions == 0


def test_address_in_use_names_the_endpoint(publisher: EventPublisher) -> None:
    with pytest.raises(PublisherError) as raised:
        EventPublisher(publisher.endpoint)
    assert str(raised.value) == (
        f"endpoint @{publisher.endpoint}: cannot bind (address already in use)"
    )


def test_four_threads_publish_everything_in_order(publisher: EventPublisher) -> None:
    per_thread = 250
    streams = ("s0", "s1", "s2", "s3")
    with EventSubscriber(publisher.endpoint, hwm=0) as subscriber:
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        sequencer = EventSequencer()
        start = threading.Barrier(len(streams))

        def work(stream: str) -> None:
            start.wait()
            for _ in range(per_thread):
                assert publisher.publish(*status_message(stream, "playing", sequencer))

        threads = [threading.Thread(target=work, args=(stream,)) for stream in streams]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received = list(subscriber.events(idle_timeout_s=RECEIVE_TIMEOUT_S, limit=1000))
    assert (publisher.published, publisher.send_errors) == (len(streams) * per_thread, 0)
    for stream in streams:
        seqs = [event["seq"] for _, event in received if event["stream"] == stream]
        assert seqs == list(range(per_thread))


@pytest.mark.timeout(60)
def test_stalled_subscriber_does_not_block_publish() -> None:
    attempts = 2000
    payload = bytes(100_000)
    with EventPublisher(ANY_PORT, hwm=10, linger_ms=0) as publisher:
        stalled = zmq.Context()
        socket = stalled.socket(zmq.SUB)
        socket.setsockopt(zmq.RCVHWM, 1)
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.connect(publisher.endpoint)
        try:
            assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
            results = [publisher.publish("tps/cam0/frame", payload) for _ in range(attempts)]
        finally:
            socket.close(linger=0)
            stalled.term()
    assert results[0] is True
    assert publisher.send_errors == results.count(False) > 0
    assert publisher.published + publisher.send_errors == attempts


def test_messages_queued_at_close_are_delivered() -> None:
    count = 400
    detail = "x" * 100_000  # 40 MB in all: far more than is on the wire when close() is called
    sequencer = EventSequencer()
    publisher = EventPublisher(ANY_PORT, hwm=0)
    with EventSubscriber(publisher.endpoint, hwm=0) as subscriber:
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        for _ in range(count):
            topic, event = sequencer.build(StreamStatus("cam0", "playing", detail, 1))
            assert publisher.publish(topic, encode(event))
        publisher.close()
        received = list(subscriber.events(idle_timeout_s=RECEIVE_TIMEOUT_S, limit=count))
    assert [event["seq"] for _, event in received] == list(range(count))


def test_subscriber_skips_foreign_messages(publisher: EventPublisher) -> None:
    sequencer = EventSequencer()
    with EventSubscriber(publisher.endpoint, topics=("",)) as subscriber:
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        publisher.publish("tps/cam0/status", b"\xc1 not msgpack")
        publisher.publish("tps/cam9/status", status_message("cam0", "playing", sequencer)[1])
        publisher.publish(*status_message("cam0", "eos", sequencer))
        received = list(subscriber.events(idle_timeout_s=RECEIVE_TIMEOUT_S, until_final=True))
    assert [event["state"] for _, event in received] == ["eos"]


def test_until_final_waits_for_every_stream(publisher: EventPublisher) -> None:
    sequencer = EventSequencer()
    order = [("a", "playing"), ("b", "playing"), ("a", "eos"), ("b", "error"), ("b", "stopped")]
    with EventSubscriber(publisher.endpoint) as subscriber:
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        for stream, state in [*order, ("c", "playing")]:
            publisher.publish(*status_message(stream, state, sequencer))
        received = list(subscriber.events(idle_timeout_s=RECEIVE_TIMEOUT_S, until_final=True))
    assert [(event["stream"], event["state"]) for _, event in received] == order


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")
def test_curve_encrypts_the_stream() -> None:
    keys = CurveKeys.generate()
    sequencer = EventSequencer()
    with (
        EventPublisher(ANY_PORT, curve=keys) as publisher,
        EventSubscriber(publisher.endpoint, curve_server_key=keys.public) as trusted,
        EventSubscriber(publisher.endpoint) as plain,
    ):
        assert publisher.wait_for_subscriber(RECEIVE_TIMEOUT_S)
        publisher.publish(*status_message("cam0", "eos", sequencer))
        received = trusted.receive(RECEIVE_TIMEOUT_S)
        assert received is not None and received[1]["state"] == "eos"
        assert plain.receive(0.3) is None


def test_bad_curve_key_is_a_publisher_error() -> None:
    with pytest.raises(PublisherError, match="expected 40 Z85 characters, got 3"):
        EventSubscriber("tcp://127.0.0.1:5555", curve_server_key=b"abc")
