"""``tpspublish``: every frame's result (and every clip decision) as an event on ZeroMQ.

The last of our elements in a stream's chain: it publishes the frame event (and the clip events
decided at that frame), then releases the frame's side-table record. Frame events name the model
set of the networks this process loaded (`NetworkPool.model_set`). All streams of a process that
publish to the same endpoint share one socket and one sequencer (`plugins.sinks.EventSinks`), so a
subscriber sees one stream of events with gap-free `seq` per stream and type.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from media.gst import NS_PER_S
from parsing.results import ClipResult, FrameResult
from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.sinks import EventSink
from transport.zmq import DEFAULT_HWM

log = logging.getLogger(__name__)


class PublishStage:
    """Publishes each frame's events and releases its record.

    Args:
        endpoint: where the events go (bind or connect, as `transport.zmq.EventPublisher`).
        hwm: messages queued per subscriber (0: unlimited).
        wait_for_subscriber_s: how long opening the endpoint waits for a subscriber (0: not).
        context: the process's sinks, side table, pool (model set), board and hooks.
    """

    def __init__(
        self, endpoint: str, hwm: int, wait_for_subscriber_s: float, context: ProcessContext
    ) -> None:
        self.endpoint, self.hwm = endpoint, hwm
        self.wait_for_subscriber_s = wait_for_subscriber_s
        self.context = context
        self.sink: EventSink | None = None
        self.stream = ""
        self.model_set: str | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], context: ProcessContext) -> PublishStage:
        wait = values["wait_for_subscriber"]
        return cls(values["endpoint"], values["hwm"], wait, context)

    def start(self) -> None:
        self.sink = self.context.sinks.open(
            self.endpoint,
            hwm=self.hwm,
            wait_for_subscriber_s=self.wait_for_subscriber_s or None,
        )

    def process(self, frame: FrameContext) -> None:
        record = frame.record
        if record is None or self.sink is None:
            return
        context = self.context
        self.stream = frame.stream
        for clip in record.clips:
            self._send_clip(clip)
        result = record.frame
        if result is None:  # no clip element upstream: the frame as the parts element left it
            result = FrameResult(
                stream=frame.stream,
                frame_index=record.frame_index,
                pts_ns=frame.pts_ns,
                wall_ns=time.time_ns(),
                width=frame.width,
                height=frame.height,
                humans=record.humans or (),
            )
        self.sink.send(dataclasses.replace(result, model_set=self._model_set()))
        context.table.release(record.stream, record.frame_index)
        context.hooks.frame_done(frame.stream, (time.monotonic_ns() - record.opened_ns) / NS_PER_S)

    def finish(self) -> None:
        """End of stream: publish the whole-stream decisions the clip element left."""
        if self.sink is None:
            return
        for clip in self.context.board.take(self.stream):
            self._send_clip(clip)

    def _model_set(self) -> str | None:
        """The model set of the process's networks, read once: the upstream elements loaded
        theirs when they started."""
        if self.model_set is None:
            self.model_set = self.context.pool.model_set()
        return self.model_set

    def _send_clip(self, clip: ClipResult) -> None:
        if self.sink is not None:
            self.sink.send(dataclasses.replace(clip, model_set=self._model_set()))
            self.context.hooks.clip_decided(clip.stream, clip.label)

    def stop(self) -> None:
        if self.sink is not None:
            self.sink = None
            self.context.sinks.close(self.endpoint)


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
