"""One stream's life under the runner: starting, playing, reconnecting, and how it ends.

A `SupervisedStream` is the state machine of one source: it builds and starts an attempt, watches
that attempt's bus, fails a start that never plays (or whose demuxer error decodebin lost), backs
off and retries a live source, restarts a looping file, and ends in ``eos``, ``error`` or
``stopped``. What the streams share (the config, the event sink, the metrics, the stop request and
the run's per-stream records) is handed in as one `StreamContext`, so the runner keeps the process
resources and the loop that drives the streams, and a stream touches nothing else.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from media.gst import demuxer_error, failure_text, stalled_demuxer
from parsing.results import StreamStatus
from pipeline.graph import StreamGraph, build_stream
from pipeline.metrics import Metrics
from pipeline.settings import PipelineConfig
from pipeline.sources import FileSource, ImageSource, parse_source
from plugins.frames import FrameTable
from plugins.sinks import EventSink

from gi.repository import Gst  # isort: skip  (media.gst has required the version)

log = logging.getLogger(__name__)

LIVE_KINDS = ("rtsp", "v4l2")
"""Source kinds that reconnect: their end or failure is usually the network's or the camera's."""
BUS_MESSAGES = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.STATE_CHANGED
"""What a stream's bus is watched for."""
BUS_DRAIN_MAX = 256
"""Most messages one stream's bus is read for in one round of the supervision loop. A start alone
puts some 60 on it (every element's state changes, the pipeline's own PLAYING last); taken one a
round, the ``playing`` status trailed the pipeline by tens of rounds, and a slow loop counted time
already spent playing against the start timeout. The bound keeps one stream flooding its bus from
starving the others: reading it costs a few milliseconds of a round at most."""
LOST_ERROR_S = 1.0
"""How long a decodebin must sit with its demuxer stopped and no stream before the demuxer's
error is taken as lost (`stalled_demuxer`)."""
PROBE_TIMEOUT_S = 10.0
"""Longest wait for a demuxer run alone to tell the error decodebin lost."""


@dataclass(frozen=True)
class StreamContext:
    """What every stream of a run shares with the runner."""

    config: PipelineConfig
    endpoint: str
    """Where the streams' publish elements send their events."""
    sink: EventSink
    metrics: Metrics
    stop: threading.Event
    """Set when the run is asked to stop: no retry, no restart."""
    status: Callable[[str, str, str], None]
    """Publishes (stream, state, detail) and makes it the stream's state in the run's report."""
    frames_in: Mapping[str, int]
    """Frames stamped per stream so far (the runner's hooks count them)."""
    video_paths: dict[str, list[Path]]
    """Every annotated video kept per stream, in the order they were closed."""


class SupervisedStream:
    """One stream's place in the supervision loop: its running attempt and its transitions."""

    def __init__(self, index: int, stream: str, context: StreamContext) -> None:
        self.index = index
        self.stream = stream
        self.context = context
        source = context.config.sources[index]
        self.uri = source.uri
        self.live = parse_source(source.uri).kind in LIVE_KINDS
        self.loop = source.loop
        self.state = "starting"
        self.graph: StreamGraph | None = None
        self.started = False
        """Whether the loop has let it start (it counts against `concurrent_streams` until done)."""
        self.done = False
        self.attempts = 0
        """Retries in a row since it last played."""
        self.restarts = 0
        self.restart_at: float | None = None
        """When a stream waiting out a back-off (or a loop) starts again (monotonic s)."""
        self.first_index = 0
        """The frame number the running attempt started at: frames since tell whether it played."""
        self.started_at = 0.0
        """When the running attempt started (monotonic s), for the start timeout."""
        self.stalled_since: float | None = None
        """Since when the running attempt's demuxer error has looked lost."""

    @property
    def running(self) -> bool:
        return self.graph is not None

    def restart_due(self, now: float) -> bool:
        """Whether a stream waiting out its back-off (or looping) starts again at `now`."""
        return self.restart_at is not None and now >= self.restart_at

    def start(self) -> bool:
        """Build and start an attempt; False when it failed (its statuses say how)."""
        config, metrics, stream = self.context.config, self.context.metrics, self.stream
        self.started = True
        self.restart_at = None
        self._status("starting", self.uri)
        self.first_index = self.context.frames_in[stream]
        self.started_at = time.monotonic()
        try:
            graph = build_stream(
                config, self.index, self.context.endpoint, self.first_index, self.restarts
            )
        except Exception as error:  # a stream that cannot be built fails alone
            self._fail(str(error))
            return False
        log.info("%s", graph.description)
        queue = graph.queue
        if queue is not None and config.mode == "live":
            queue.connect("overrun", lambda _queue: metrics.frame_dropped(stream))
        self.graph = graph
        if graph.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            message = graph.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            self._fail(_failure(graph, message))
            return False
        return True

    def poll(self, wait_ns: int) -> None:
        """Handle what waits on the running attempt's bus, at most `BUS_DRAIN_MAX` messages,
        waiting at most `wait_ns` for the first; stops at a message that ends the attempt (the
        rest of its bus goes with it)."""
        graph = self.graph
        bus = graph.pipeline.get_bus()
        message = bus.timed_pop_filtered(wait_ns, BUS_MESSAGES)
        handled = 0
        while message is not None:
            self._handle(graph, message)
            handled += 1
            if self.graph is not graph or handled == BUS_DRAIN_MAX:
                return
            message = bus.timed_pop_filtered(0, BUS_MESSAGES)

    def _handle(self, graph: StreamGraph, message: Gst.Message) -> None:
        """One message of the running attempt's bus: playing, its end, or its failure."""
        if message.type == Gst.MessageType.STATE_CHANGED:
            if message.src == graph.pipeline:
                _, new, _ = message.parse_state_changed()
                if new == Gst.State.PLAYING and self.state == "starting":
                    self.attempts = 0
                    self._status("playing", graph.uri)
        elif message.type == Gst.MessageType.EOS:
            self._ended()
        else:
            self._fail(_failure(graph, message))

    def check_start(self, now: float) -> None:
        """While starting: fail with the error decodebin lost (read again) once the demuxer has
        sat stalled a while, or fail once not playing after `start_timeout_s` (a source that opens
        but never delivers a frame, such as a camera that sends nothing, would hold the run for
        ever)."""
        graph = self.graph
        if graph is None or self.state != "starting":
            return
        timeout = self.context.config.start_timeout_s
        if now - self.started_at > timeout:
            self._fail(f"{graph.uri}: did not start playing within {timeout:g} s")
        elif (demuxer := stalled_demuxer(graph.pipeline)) is None:
            self.stalled_since = None
        elif self.stalled_since is None:
            self.stalled_since = now
        elif now - self.stalled_since > LOST_ERROR_S:
            self.stalled_since = None
            self._fail(_lost_error(graph, demuxer))

    def sample_queues(self, table: FrameTable) -> None:
        """The queue depth gauges: frames waiting before the parser, frames being parsed."""
        if self.graph is None:
            return
        metrics = self.context.metrics
        queue = self.graph.queue
        if queue is not None:
            metrics.queue_depth(self.stream, "parser", queue.get_property("current-level-buffers"))
        metrics.queue_depth(self.stream, "in_flight", table.in_flight(self.stream))

    def flush(self) -> None:
        """Asked to stop: a running attempt that has delivered a frame is sent end-of-stream (it
        ends once its frames in flight are through); one that has not, and one waiting, stop now.

        An attempt with no frame in yet has nothing to flush, and its decodebin may still be
        setting the demuxer up: an end-of-stream there reaches the demuxer (or typefind) as the
        file's end in mid-setup (GStreamer 1.22), which then fails ("typefind: Internal data
        stream error", "This file contains no playable streams") or loses its error and waits for
        ever. A looping file restarts every loop, so a stop often lands on a fresh attempt.
        """
        if self.graph is not None and self._delivered():
            self.graph.pipeline.send_event(Gst.Event.new_eos())
        elif not self.done:
            self.teardown()
            self._stopped("stopped on request")

    def _delivered(self) -> bool:
        """Whether a frame of the running attempt has come out of its decoder (into the stamp)."""
        return self.context.frames_in[self.stream] > self.first_index

    def abandon(self) -> None:
        """The stop grace has run out: whatever has not flushed is torn down."""
        if not self.done:
            self.teardown()
            self._stopped("did not flush in time")

    def teardown(self) -> None:
        """Stop the running attempt; keep its annotated video only if a frame went into it."""
        graph, self.graph = self.graph, None
        if graph is None:
            return
        graph.pipeline.set_state(Gst.State.NULL)
        if graph.video_path is None:
            return
        if self._delivered():
            self.context.video_paths.setdefault(self.stream, []).append(graph.video_path)
        else:  # the muxer made the file on starting: an empty one is no video
            graph.video_path.unlink(missing_ok=True)

    def _status(self, state: str, detail: str) -> None:
        self.state = state
        self.context.status(self.stream, state, detail)

    def _stopped(self, detail: str) -> None:
        self._status("stopped", detail)
        self.done = True

    def _fail(self, detail: str) -> None:
        """An error: a live source retries after a back-off, anything else ends for good."""
        self.teardown()
        if self._may_retry():
            self._retry(detail)
            return
        self._status("error", detail)
        # a final status for subscribers; the stream's state stays "error"
        self.context.sink.send(
            StreamStatus(self.stream, "stopped", "after the error", time.time_ns())
        )
        self.done = True

    def _may_retry(self) -> bool:
        """A live source retries until it has used `max_attempts` retries in a row."""
        most = self.context.config.reconnect.max_attempts
        return (
            self.live and not self.context.stop.is_set() and (most is None or self.attempts < most)
        )

    def _retry(self, detail: str) -> None:
        settings = self.context.config.reconnect
        delay = min(settings.max_delay_s, settings.initial_delay_s * 2**self.attempts)
        delay *= 1 + settings.jitter * random.uniform(-1, 1)
        self.attempts += 1
        self.restarts += 1
        self.restart_at = time.monotonic() + delay
        self.context.metrics.reconnect(self.stream)
        log.warning("stream %s: %s; retry %d in %.1f s", self.stream, detail, self.attempts, delay)
        self._status("reconnecting", f"{detail}; retry in {delay:.1f} s")

    def _ended(self) -> None:
        """End of stream: a looping file starts again, a live source reconnects, else eos."""
        self.teardown()
        if self.context.stop.is_set():
            self._stopped("stopped on request")
        elif self.loop:
            self.restarts += 1
            self.restart_at = time.monotonic()
        elif self._may_retry():
            self._retry(f"{self.uri}: the source ended")
        else:
            self._status("eos", "end of stream")
            self.done = True


def _failure(graph: StreamGraph, message: Gst.Message | None) -> str:
    """An error of a stream as one line that names its source the way the user gave it."""
    return f"{graph.uri}: {'cannot start' if message is None else failure_text(message)}"


def _lost_error(graph: StreamGraph, demuxer: str) -> str:
    """The error decodebin lost, from the demuxer run alone on the file."""
    spec = parse_source(graph.uri)
    path = spec.path if isinstance(spec, FileSource | ImageSource) else None
    message = None if path is None else demuxer_error(path, demuxer, PROBE_TIMEOUT_S)
    if message is None:
        return f"{graph.uri}: not a playable video (its {demuxer} stopped without a word)"
    return _failure(graph, message)
