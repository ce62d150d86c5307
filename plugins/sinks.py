"""Where events leave the process: one ZeroMQ publisher and sequencer per endpoint.

All streams of a process that publish to the same endpoint share one socket and one sequencer
(`EventSinks.open`), so a subscriber sees one stream of events with gap-free `seq` per stream and
type. The runner opens the endpoint for its status events, the ``tpspublish`` elements for their
frames; both reach the same `EventSinks` through their `plugins.context.ProcessContext`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from parsing.events import Event, EventSequencer, encode
from parsing.results import ClipResult, FrameResult, StreamStatus
from plugins.hooks import Hooks
from transport.zmq import DEFAULT_HWM, EventPublisher

Result = FrameResult | ClipResult | StreamStatus


class EventSink:
    """One publisher and one sequencer, shared by every stream publishing to an endpoint.

    Listeners (e.g. the runner's recorder and progress display) get every event as it is sent,
    in this process, whatever happens on the socket; they are called one at a time. `hooks` hear
    of every publish attempt (`Hooks.event_sent`).
    """

    def __init__(self, publisher: EventPublisher, hooks: Hooks) -> None:
        self.publisher = publisher
        self.hooks = hooks
        self.sequencer = EventSequencer()
        self.users = 0
        self.listeners: list[Callable[[Event], None]] = []
        self._listen_lock = threading.Lock()

    def send(self, result: Result) -> bool:
        """Publish one result as its event; False when the socket refused it (counted)."""
        topic, event = self.sequencer.build(result)
        accepted = self.publisher.publish(topic, encode(event))
        self.hooks.event_sent(result.stream, event["type"], accepted)
        with self._listen_lock:
            for listener in self.listeners:
                listener(event)
        return accepted


class EventSinks:
    """The open sinks of a process by endpoint, counted by use.

    Args:
        hooks: told of every publish attempt of every sink opened here.
    """

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self._sinks: dict[str, EventSink] = {}
        self._lock = threading.Lock()

    def open(self, endpoint: str, *, hwm: int = DEFAULT_HWM,
             wait_for_subscriber_s: float | None = None, **options: Any) -> EventSink:  # fmt: skip
        """The shared sink of `endpoint`, opened on first use (later callers' options are ignored).

        Raises:
            PublisherError: a malformed endpoint or an address already in use.
        """
        with self._lock:
            sink = self._sinks.get(endpoint)
            if sink is None:
                publisher = EventPublisher(
                    endpoint, hwm=hwm, wait_for_subscriber_s=wait_for_subscriber_s, **options
                )
                sink = self._sinks[endpoint] = EventSink(publisher, self.hooks)
            sink.users += 1
            return sink

    def close(self, endpoint: str) -> None:
        """Give back one use of a sink; the last one closes the socket (queued events still go)."""
        with self._lock:
            sink = self._sinks.get(endpoint)
            if sink is None:
                return
            sink.users -= 1
            if sink.users <= 0:
                del self._sinks[endpoint]
                sink.publisher.close()
