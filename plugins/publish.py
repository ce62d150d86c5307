"""``tpspublish``: every frame's result (and every clip decision) as an event on ZeroMQ.

The last of our elements in a stream's chain: it publishes the frame event (and the clip events
decided at that frame), then releases the frame's side-table record. Frame events name the model
set of the networks this process loaded (`NetworkPool.model_set`). All streams of a process that
publish to the same endpoint share one socket and one sequencer (`open_sink`), so a subscriber sees
one stream of events with gap-free `seq` per stream and type.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from media.gst import NS_PER_S
from parsing.events import Event, EventSequencer, encode
from parsing.results import ClipResult, FrameResult, StreamStatus
from plugins import board
from plugins.clip import CLIP, FRAME
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.frames import FrameTable, default_table
from plugins.hooks import hooks
from plugins.parts import HUMANS
from plugins.pool import default_pool
from transport.zmq import DEFAULT_HWM, EventPublisher

log = logging.getLogger(__name__)

Result = FrameResult | ClipResult | StreamStatus


class EventSink:
    """One publisher and one sequencer, shared by every stream publishing to an endpoint.

    Listeners (e.g. the runner's recorder and progress display) get every event as it is sent,
    in this process, whatever happens on the socket; they are called one at a time.
    """

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher
        self.sequencer = EventSequencer()
        self.users = 0
        self.listeners: list[Callable[[Event], None]] = []
        self._listen_lock = threading.Lock()

    def send(self, result: Result) -> bool:
        """Publish one result as its event; False when the socket refused it (counted)."""
        topic, event = self.sequencer.build(result)
        accepted = self.publisher.publish(topic, encode(event))
        hooks().event_sent(result.stream, event["type"], accepted)
        with self._listen_lock:
            for listener in self.listeners:
                listener(event)
        return accepted


_sinks: dict[str, EventSink] = {}
_sinks_lock = threading.Lock()


def open_sink(endpoint: str, *, hwm: int = DEFAULT_HWM, wait_for_subscriber_s: float | None = None,
              **options: Any) -> EventSink:  # fmt: skip
    """The shared sink of `endpoint`, opened on first use (later callers' options are ignored).

    Raises:
        PublisherError: a malformed endpoint or an address already in use.
    """
    with _sinks_lock:
        sink = _sinks.get(endpoint)
        if sink is None:
            publisher = EventPublisher(
                endpoint, hwm=hwm, wait_for_subscriber_s=wait_for_subscriber_s, **options
            )
            sink = _sinks[endpoint] = EventSink(publisher)
        sink.users += 1
        return sink


def close_sink(endpoint: str) -> None:
    """Give back one use of the sink; the last one closes the socket (queued events still go)."""
    with _sinks_lock:
        sink = _sinks.get(endpoint)
        if sink is None:
            return
        sink.users -= 1
        if sink.users <= 0:
            del _sinks[endpoint]
            sink.publisher.close()


class PublishStage:
    """Publishes each frame's events and releases its record."""

    def __init__(
        self, endpoint: str, hwm: int, wait_for_subscriber_s: float, table: FrameTable
    ) -> None:
        self.endpoint, self.hwm = endpoint, hwm
        self.wait_for_subscriber_s = wait_for_subscriber_s
        self.table = table
        self.sink: EventSink | None = None
        self.stream = ""
        self.model_set: str | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> PublishStage:
        wait = values["wait_for_subscriber"]
        return cls(values["endpoint"], values["hwm"], wait, default_table())

    def start(self) -> None:
        self.sink = open_sink(
            self.endpoint,
            hwm=self.hwm,
            wait_for_subscriber_s=self.wait_for_subscriber_s or None,
        )

    def process(self, frame: FrameContext) -> None:
        record = frame.record
        if record is None or self.sink is None:
            return
        self.stream = frame.stream
        for clip in record.results.get(CLIP, ()):
            self.sink.send(clip)
            hooks().clip_decided(clip.stream, clip.label)
        result = record.results.get(FRAME)
        if result is None:  # no clip element upstream: the frame as the parts element left it
            result = FrameResult(
                stream=frame.stream,
                frame_index=record.frame_index,
                pts_ns=frame.pts_ns,
                wall_ns=time.time_ns(),
                width=frame.width,
                height=frame.height,
                humans=record.results.get(HUMANS, ()),
            )
        if self.model_set is None:  # the upstream elements loaded their networks when they started
            self.model_set = default_pool().model_set()
        self.sink.send(dataclasses.replace(result, model_set=self.model_set))
        self.table.release(record.stream, record.frame_index)
        hooks().frame_done(frame.stream, (time.monotonic_ns() - record.opened_ns) / NS_PER_S)

    def finish(self) -> None:
        """End of stream: publish the whole-stream decisions the clip element left."""
        if self.sink is None:
            return
        for clip in board.take(self.stream):
            self.sink.send(clip)
            hooks().clip_decided(clip.stream, clip.label)

    def stop(self) -> None:
        if self.sink is not None:
            self.sink = None
            close_sink(self.endpoint)


PUBLISH = ElementSpec(
    name="tpspublish",
    summary="Publish frame and clip events on ZeroMQ (multipart [topic, msgpack])",
    stage_factory=PublishStage.from_properties,
    properties=(
        Prop(
            "endpoint", str, "tcp://127.0.0.1:5555", "Bind (tcp://..., @tcp://...) or connect (>)"
        ),
        Prop("hwm", int, DEFAULT_HWM, "Messages queued per subscriber (0: unlimited)", minimum=0),
        Prop("wait-for-subscriber", float, 0.0, "Seconds to wait for a subscriber", minimum=0),
    ),
)
