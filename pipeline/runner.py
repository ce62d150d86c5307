"""Running a pipeline: streams started, supervised, reported, stopped; outputs written at the end.

The runner owns what the streams share: its `plugins.context.ProcessContext` (the network pool,
one micro-batcher per network, and the hooks that feed the metrics; installed for the run, so
every element of its streams works with it), the event sink (one ZeroMQ socket), the metrics, and
the recorder that turns the events into the
Kinetics-TPS prediction files. Each stream runs in its own GStreamer pipeline, its life (start,
reconnects, end) a `pipeline.supervision.SupervisedStream` that this loop drives; a stream that
fails publishes an ``error`` status and stops while the others go on. The run ends when every stream
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
from functools import partial
from pathlib import Path

from media.gst import NS_PER_S
from models.registry import ModelError
from parsing.events import Event
from parsing.results import FINAL_STATES, StreamStatus
from pipeline.metrics import Metrics, MetricsServer, parse_address
from pipeline.recorder import Recorder
from pipeline.settings import PipelineConfig
from pipeline.supervision import StreamContext, SupervisedStream
from plugins.context import ProcessContext, use_context
from plugins.element import register_elements
from plugins.hooks import Hooks
from plugins.pool import NetworkPool
from plugins.sinks import EventSink
from tps.formats import Prediction, write_pred

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
    ended: float | None = None
    """When the stream reached a final state: its rate stops there."""

    def line(self, stream: str) -> str:
        until = time.monotonic() if self.ended is None else self.ended
        rate = self.frames / max(until - self.started, 1e-9)
        return (
            f"{stream}: {self.state:<9} {self.frames:6d} frames {rate:6.1f} fps "
            f"{self.people} people  action {self.action}"
        )


ROLE_ARCHS: dict[str, tuple[str, ...]] = {
    "person": ("yolof", "movenet_multipose"),
    "pose": ("hrnet", "movenet_lightning", "movenet_thunder"),
    "parts": ("yolof",),
    "clip": ("ir_csn", "ip_csn"),
}
"""The architecture families (registry name prefixes) each parser role runs."""


@dataclass
class RunReport:
    """What a run did."""

    states: dict[str, str]
    progress: dict[str, StreamProgress]
    prediction: Prediction | None
    video_paths: dict[str, list[Path]]
    """Every annotated video written per stream (one per attempt that had frames), in order."""
    metrics: Metrics

    failed: list[str] = field(default_factory=list)
    """Streams that ended with an error."""
    errors: dict[str, str] = field(default_factory=dict)
    """Each failed stream's error, one line naming its source."""


class Runner:
    """Runs every stream of `config` to its end."""

    def __init__(self, config: PipelineConfig, metrics: Metrics | None = None) -> None:
        """`metrics`: where the run counts (a bench passes one that also records); by default
        a fresh `Metrics` of the config's streams."""
        self.config = config
        self.streams = config.stream_ids()
        self.metrics = Metrics(self.streams) if metrics is None else metrics
        self.progress = {stream: StreamProgress() for stream in self.streams}
        self.states = dict.fromkeys(self.streams, "starting")
        self.failed: list[str] = []
        self.errors: dict[str, str] = {}
        self.recorder = Recorder()
        self.recording = config.ground_truth is not None or (
            config.output.dir is not None and config.output.predictions
        )
        """Whether the run keeps the events for a prediction: only when it writes or scores one,
        since the recorder holds every annotated frame until the end (an endless live stream
        would grow it for ever)."""
        self.video_paths: dict[str, list[Path]] = {}
        self.frames_in = dict.fromkeys(self.streams, 0)
        """Frames stamped per stream, so a restarted stream numbers on."""
        self.metrics_url: str | None = None
        """Where /metrics and /healthz answer while the run goes on."""
        self._stop = threading.Event()
        self.model_set: str | None = None
        """The model set of the loaded networks, named in every status event."""
        self.networks: tuple[tuple[str, str], ...] = ()
        """(role, network name) of every loaded network, for status events."""
        batching = config.batching
        self.context = ProcessContext(
            pool=NetworkPool(batching.max_batch, batching.max_wait_ms, observer=self.metrics.batch),
            hooks=self._hooks(),
        )
        """What this run's elements share (side table, pool, hooks, ...), in force while it runs."""

    # -- shared resources ----------------------------------------------------------------------
    @contextmanager
    def _metrics_server(self) -> Iterator[MetricsServer | None]:
        settings = self.config.metrics
        if not settings.enabled:
            yield None
            return
        host, port = parse_address(settings.address)
        with MetricsServer(
            self.metrics,
            host,
            port,
            stall_after_s=settings.stall_after_s,
            down_after_s=settings.down_after_s,
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

        def frame_in(stream: str) -> None:
            self.frames_in[stream] += 1
            metrics.frame_in(stream)

        return Hooks(
            frame_in=frame_in,
            frame_done=metrics.frame_processed,
            frame_dropped=metrics.frame_dropped,
            event_sent=event_sent,
            clip_decided=metrics.clip_decision,
            stage_time=metrics.observe_stage,
        )

    def _listen(self, event: Event) -> None:
        """Every event, in process: the recorder (when it is wanted) and the progress lines."""
        if self.recording:
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
        """Publish a status of `stream` and make it the stream's state (report, metrics)."""
        self.states[stream] = state
        self.progress[stream].state = state
        if state == "playing" and self.progress[stream].frames == 0:
            self.progress[stream].started = time.monotonic()  # the rate counts from the first play
        if state in FINAL_STATES or state == "error":  # an error is the stream's end
            self.progress[stream].ended = time.monotonic()
        self.metrics.source_state(stream, state)
        sink.send(
            StreamStatus(stream, state, detail, time.time_ns(), self.model_set, self.networks)
        )
        if state == "error":
            self.failed.append(stream)
            self.errors[stream] = detail
            log.error("stream %s: %s", stream, detail)
        else:
            log.debug("stream %s: %s %s", stream, state, detail)

    def _preload(self, pool: NetworkPool) -> None:
        """Load every network now, so a bad checkpoint fails the run before any stream starts.

        Raises:
            ModelError: a checkpoint is unreadable, or its architecture does not fit its role
                (a detector given as the pose network would fail only once a person is seen).
        """
        parser = self.config.parser
        roles = [("person", parser.person), ("pose", parser.pose)]
        roles += [("parts", parser.parts)] if parser.parts.uses_network else []
        roles += [("clip", network) for network in parser.clip.networks] if parser.clip else []
        names: dict[str, list[str]] = {}
        for role, settings in roles:
            arch = pool.get(settings).arch
            if not arch.startswith(ROLE_ARCHS[role]):
                raise ModelError(
                    f"parser.{role} weights {settings.weights}: expected a "
                    f"{' or '.join(ROLE_ARCHS[role])} checkpoint, got architecture {arch!r}"
                )
            names.setdefault(role, []).append(arch)
        self.model_set = pool.model_set()
        self.networks = tuple((role, "+".join(archs)) for role, archs in names.items())

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> RunReport:
        """Run to the end; returns what happened. Bad config and weights raise before starting."""
        config, context = self.config, self.context
        register_elements()
        with use_context(context):
            try:
                self._serve(config, context)
            finally:
                context.pool.close()
        clips = config.parser.clip is not None  # without a clip stage there is no action to write
        recorded = self.recording and clips and self._recorded()
        prediction = self.recorder.prediction() if recorded else None
        if prediction is not None and config.output.dir and config.output.predictions:
            write_pred(config.output.dir, prediction)
            log.info(
                "wrote predictions for %d streams to %s", len(prediction.labels), config.output.dir
            )
        return RunReport(
            self.states,
            self.progress,
            prediction,
            {stream: list(paths) for stream, paths in self.video_paths.items()},
            self.metrics,
            self.failed,
            dict(self.errors),
        )

    def _serve(self, config: PipelineConfig, context: ProcessContext) -> None:
        """Load the networks, open the event sink and supervise the streams to their end."""
        self._preload(context.pool)
        if config.output.dir is not None:
            config.output.dir.mkdir(parents=True, exist_ok=True)
        offline = config.mode == "offline"
        endpoint = config.publish.endpoint
        wait_s = config.publish.wait_for_subscriber_s if offline else 0.0
        curve = config.publish.curve
        sink = context.sinks.open(
            endpoint,
            hwm=0 if offline else config.publish.hwm,
            wait_for_subscriber_s=wait_s or None,
            **(curve.publisher_options() if curve is not None else {}),
        )
        sink.listeners.append(self._listen)
        try:
            with self._metrics_server(), self._signals():
                self._supervise(sink, endpoint)
        finally:
            context.sinks.close(endpoint)

    def _recorded(self) -> bool:
        return any(progress.frames for progress in self.progress.values())

    def _supervise(self, sink: EventSink, endpoint: str) -> None:
        """Start streams (at most `concurrent_streams` at once), watch their buses, end them."""
        context = StreamContext(
            self.config,
            endpoint,
            sink,
            self.metrics,
            self._stop,
            partial(self._status, sink),
            self.frames_in,
            self.video_paths,
        )
        slots = [
            SupervisedStream(index, stream, context) for index, stream in enumerate(self.streams)
        ]
        try:
            self._watch(slots)
        finally:  # an exception on the way (an interrupt) must leave no pipeline running
            for slot in slots:
                slot.teardown()

    def _start(self, slot: SupervisedStream) -> bool:
        """Start (or restart) one stream: every start the loop makes goes through here."""
        return slot.start()

    def _watch(self, slots: list[SupervisedStream]) -> None:
        """The supervision loop, until every stream is done or the stop grace has run out."""
        limit = self.config.concurrent_streams or len(slots)
        stop_deadline: float | None = None
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        table = self.context.table
        while not all(slot.done for slot in slots):
            now = time.monotonic()
            busy = sum(1 for slot in slots if slot.started and not slot.done)
            for slot in slots:
                if slot.done or slot.running or self._stop.is_set():
                    continue
                if not slot.started and busy < limit:
                    busy += 1
                    self._start(slot)
                elif slot.restart_due(now):
                    self._start(slot)
            if self._stop.is_set() and stop_deadline is None:
                stop_deadline = now + STOP_GRACE_S
                log.info("stopping: flushing the running streams")
                for slot in slots:
                    slot.flush()
            if stop_deadline is not None and now > stop_deadline:
                for slot in slots:
                    slot.abandon()
                break
            running = [slot for slot in slots if slot.running]
            if not running:
                time.sleep(POLL_S)  # only back-off timers are pending
            for slot in running:
                slot.poll(int(POLL_S * NS_PER_S / len(running)))
            for slot in running:
                slot.check_start(now)
                slot.sample_queues(table)
            if now >= next_progress:
                next_progress += PROGRESS_EVERY_S
                for slot in running:
                    log.info("%s", self.progress[slot.stream].line(slot.stream))

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
