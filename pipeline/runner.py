"""Running a pipeline: streams started, supervised, reported, stopped; outputs written at the end.

The runner owns what the streams share: the network pool (one micro-batcher per network), the
event sink (one ZeroMQ socket), the metrics, and the recorder that turns the events into the
Kinetics-TPS prediction files. Each stream runs in its own GStreamer pipeline; a stream that fails
publishes an ``error`` status and stops while the others go on. The run ends when every stream
has ended, or on SIGINT/SIGTERM, which send end-of-stream to every stream so that everything
already parsed is still published and written.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from parsing.events import Event
from parsing.results import StreamStatus
from pipeline.graph import StreamGraph, build_stream
from pipeline.gst import NS_PER_S, error_text
from pipeline.metrics import Metrics, MetricsServer, parse_address
from pipeline.recorder import Recorder
from pipeline.settings import PipelineConfig
from plugins.element import register_elements
from plugins.hooks import Hooks, install
from plugins.pool import NetworkPool, configure_default_pool
from plugins.publish import EventSink, close_sink, open_sink
from tps.formats import Prediction, write_pred

from gi.repository import Gst  # isort: skip  (pipeline.gst has required the version)

log = logging.getLogger(__name__)

POLL_S = 0.05
"""Longest wait on one stream's bus per round of the supervision loop."""
STOP_GRACE_S = 10.0
"""After SIGINT/SIGTERM, how long streams get to flush before they are torn down."""
PROGRESS_EVERY_S = 5.0


@dataclass
class StreamProgress:
    """What the progress line shows about one stream."""

    frames: int = 0
    people: int = 0
    action: str = "-"
    state: str = "starting"
    started: float = field(default_factory=time.monotonic)

    def line(self, stream: str) -> str:
        rate = self.frames / max(time.monotonic() - self.started, 1e-9)
        return (
            f"{stream}: {self.state:<9} {self.frames:6d} frames {rate:6.1f} fps "
            f"{self.people} people  action {self.action}"
        )


@dataclass
class RunReport:
    """What a run did."""

    states: dict[str, str]
    progress: dict[str, StreamProgress]
    prediction: Prediction | None
    video_paths: dict[str, Path]
    metrics: Metrics

    failed: list[str] = field(default_factory=list)
    """Streams that ended with an error."""


class Runner:
    """Runs every stream of `config` to its end."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.streams = config.stream_ids()
        self.metrics = Metrics(self.streams)
        self.progress = {stream: StreamProgress() for stream in self.streams}
        self.states = dict.fromkeys(self.streams, "starting")
        self.failed: list[str] = []
        self.recorder = Recorder()
        self.metrics_url: str | None = None
        """Where /metrics and /healthz answer while the run goes on."""
        self._stop = threading.Event()

    # -- shared resources ----------------------------------------------------------------------
    @contextmanager
    def _metrics_server(self) -> Iterator[MetricsServer | None]:
        settings = self.config.metrics
        if not settings.enabled:
            yield None
            return
        host, port = parse_address(settings.address)
        with MetricsServer(
            self.metrics, host, port, stall_after_s=settings.stall_after_s
        ) as server:
            log.info("metrics on %s/metrics, health on %s/healthz", server.url, server.url)
            self.metrics_url = server.url
            yield server

    def _hooks(self) -> Hooks:
        metrics = self.metrics

        def event_sent(stream: str, event_type: str, accepted: bool) -> None:
            if accepted:
                metrics.event_published(stream, event_type)
            else:
                metrics.send_error()

        return Hooks(
            frame_in=metrics.frame_in,
            frame_done=metrics.frame_processed,
            event_sent=event_sent,
            clip_decided=metrics.clip_decision,
            stage_time=metrics.observe_stage,
        )

    def _listen(self, event: Event) -> None:
        """Every event, in process: the recorder and the progress lines."""
        self.recorder.add(event)
        progress = self.progress.get(event["stream"])
        if progress is None:
            return
        if event["type"] == "frame":
            progress.frames += 1
            progress.people = len(event["humans"])
        elif event["type"] == "clip":
            progress.action = event["action"]["label"]

    def _status(self, sink: EventSink, stream: str, state: str, detail: str = "") -> None:
        self.states[stream] = state
        self.progress[stream].state = state
        if state == "playing":
            self.progress[stream].started = time.monotonic()
        self.metrics.source_state(stream, state)
        sink.send(StreamStatus(stream, state, detail, time.time_ns()))
        if state == "error":
            self.failed.append(stream)
            log.error("stream %s: %s", stream, detail)
        else:
            log.debug("stream %s: %s %s", stream, state, detail)

    def _preload(self, pool: NetworkPool) -> None:
        """Load every network now, so a bad checkpoint fails the run before any stream starts."""
        parser = self.config.parser
        for settings in (parser.person, parser.pose, parser.parts, *parser.clip.networks):
            pool.get(settings)

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> RunReport:
        """Run to the end; returns what happened. Bad config and weights raise before starting."""
        config = self.config
        register_elements()
        pool = NetworkPool(
            config.batching.max_batch, config.batching.max_wait_ms, observer=self.metrics.batch
        )
        configure_default_pool(pool)
        install(self._hooks())
        self._preload(pool)
        if config.output.dir is not None:
            config.output.dir.mkdir(parents=True, exist_ok=True)
        offline = config.mode == "offline"
        endpoint = config.publish.endpoint
        wait_s = config.publish.wait_for_subscriber_s if offline else 0.0
        sink = open_sink(
            endpoint, hwm=0 if offline else config.publish.hwm, wait_for_subscriber_s=wait_s or None
        )
        sink.listeners.append(self._listen)
        try:
            with self._metrics_server(), self._signals():
                graphs = self._supervise(sink, endpoint)
        finally:
            close_sink(endpoint)
            configure_default_pool(NetworkPool())
            install(Hooks())
        prediction = self.recorder.prediction() if self._recorded() else None
        if prediction is not None and config.output.dir and config.output.predictions:
            write_pred(config.output.dir, prediction)
            log.info(
                "wrote predictions for %d streams to %s", len(prediction.labels), config.output.dir
            )
        return RunReport(
            self.states,
            self.progress,
            prediction,
            {g.stream: g.video_path for g in graphs if g.video_path is not None},
            self.metrics,
            self.failed,
        )

    def _recorded(self) -> bool:
        return any(progress.frames for progress in self.progress.values())

    def _start(self, sink: EventSink, endpoint: str, index: int) -> StreamGraph | None:
        """Build and start stream `index`; None when it failed (its statuses say why)."""
        stream = self.streams[index]
        self._status(sink, stream, "starting", self.config.sources[index].uri)
        try:
            graph = build_stream(self.config, index, endpoint)
        except Exception as error:  # a stream that cannot be built fails alone
            self._status(sink, stream, "error", str(error))
            self._status(sink, stream, "stopped", "after the error")
            return None
        log.info("%s", graph.description)
        queue = graph.queue
        if queue is not None and self.config.mode == "live":
            queue.connect("overrun", lambda _queue, s=stream: self.metrics.frame_dropped(s))
        if graph.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self._end(sink, graph, "error", self._first_error(graph) or "cannot start")
            return None
        return graph

    @staticmethod
    def _first_error(graph: StreamGraph) -> str | None:
        message = graph.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        return None if message is None else error_text(message)

    def _supervise(self, sink: EventSink, endpoint: str) -> list[StreamGraph]:
        """Start streams (at most `concurrent_streams` at once), watch their buses, end them."""
        pending = list(range(len(self.streams)))
        limit = self.config.concurrent_streams or len(pending)
        active: dict[str, StreamGraph] = {}
        started: list[StreamGraph] = []
        stop_deadline: float | None = None
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        wanted = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.STATE_CHANGED
        while pending or active:
            while pending and len(active) < limit and not self._stop.is_set():
                graph = self._start(sink, endpoint, pending.pop(0))
                if graph is not None:
                    active[graph.stream] = graph
                    started.append(graph)
            if self._stop.is_set() and stop_deadline is None:
                log.info("stopping: flushing %d streams", len(active))
                stop_deadline = time.monotonic() + STOP_GRACE_S
                for index in pending:
                    self._status(sink, self.streams[index], "stopped", "never started")
                pending.clear()
                for graph in active.values():
                    graph.pipeline.send_event(Gst.Event.new_eos())
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                for stream in list(active):
                    self._end(sink, active.pop(stream), "stopped", "did not flush in time")
                break
            for stream in list(active):
                graph = active[stream]
                message = graph.pipeline.get_bus().timed_pop_filtered(
                    int(POLL_S * NS_PER_S / max(len(active), 1)), wanted
                )
                if message is None:
                    continue
                if message.type == Gst.MessageType.STATE_CHANGED:
                    if message.src == graph.pipeline:
                        _, new, _ = message.parse_state_changed()
                        if new == Gst.State.PLAYING and self.states[stream] == "starting":
                            self._status(sink, stream, "playing", graph.uri)
                elif message.type == Gst.MessageType.EOS:
                    state = "stopped" if self._stop.is_set() else "eos"
                    self._end(sink, active.pop(stream), state, "end of stream")
                else:
                    self._end(sink, active.pop(stream), "error", error_text(message))
            if time.monotonic() >= next_progress:
                next_progress += PROGRESS_EVERY_S
                for stream in active:
                    log.info("%s", self.progress[stream].line(stream))
        return started

    def _end(self, sink: EventSink, graph: StreamGraph, state: str, detail: str) -> None:
        """Tear a stream down; its last status is always `eos` or `stopped` (after an error)."""
        graph.pipeline.set_state(Gst.State.NULL)
        self._status(sink, graph.stream, state, detail)
        if state == "error":
            self._status(sink, graph.stream, "stopped", "after the error")

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM ask for a graceful stop (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def ask_stop(signum: int, _frame: object) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self._stop.set()

        previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Ask for a graceful stop from another thread."""
        self._stop.set()
