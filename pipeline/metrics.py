"""Prometheus metrics of the streaming pipeline and the HTTP endpoint that serves them with health.

`Metrics` holds every series in its own `CollectorRegistry` (never the process-wide default, so
importing this module changes nothing and two pipelines, or two tests, in one process do not
collide). GStreamer streaming threads, batcher workers and the supervisor update it concurrently:
prometheus_client's metric objects are thread-safe, and the little state kept for health (current
source state, time of the last processed frame) sits under one lock.

`MetricsServer` serves it over HTTP from a daemon thread::

    GET /metrics   Prometheus text format (``generate_latest``)
    GET /healthz   200 {"status": "ok", "streams": {"cam0": {"state": "playing", "age_s": 0.04}}}
                   503 with "status": "stalled" (and the stalled streams listed) when a stream has
                   been ``playing`` without a processed frame for more than ``stall_after_s``,
                   or "down" (and the streams that are down listed) when a stream has been
                   reconnecting or failed, without playing again, for more than ``down_after_s``
    GET /livez     the same body, 503 only when a stream is stalled: the process itself is stuck
                   (a liveness probe restarts it), while a lost camera is not cured by a restart

Series (``tps_`` namespace, unit in the name):

=========================================  ==========  ===========================================
``tps_frames_in_total``                    counter     {stream}: frames that entered the pipeline
``tps_frames_processed_total``             counter     {stream}: frames whose results were published
``tps_frames_dropped_total``               counter     {stream}: frames dropped (live gate, queue)
``tps_stage_seconds``                      histogram   {stage}: time spent in one stage call
``tps_end_to_end_latency_seconds``         histogram   {stream}: frame entering -> event published
``tps_batch_size``                         histogram   {network}: requests per batched call
``tps_queue_depth``                        gauge       {stream, queue}: items there now
``tps_clip_decisions_total``               counter     {stream, action}: clip-level actions
``tps_events_published_total``             counter     {stream, type}: events sent
``tps_event_send_errors_total``            counter     events refused by the transport
``tps_source_state``                       gauge       {stream, state}: 1 for the current state
``tps_source_reconnects_total``            counter     {stream}: reconnection attempts
=========================================  ==========  ===========================================

Label cardinality stays bounded: streams must be declared (from the config) before use, states and
event types come from `parsing.results.STREAM_STATES` and `parsing.events.EVENT_TYPES`, and actions
outside the Kinetics-TPS vocabulary are counted as `OTHER_ACTION`.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import Field, field_validator

from parsing.events import EVENT_TYPES
from parsing.results import STREAM_STATES
from parsing.settings import Section
from tps.vocabulary import ACTIONS

log = logging.getLogger(__name__)

FamilyT = TypeVar("FamilyT", Counter, Gauge, Histogram)

NAMESPACE = "tps"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464
DEFAULT_ADDRESS = f"{DEFAULT_HOST}:{DEFAULT_PORT}"
DEFAULT_STALL_AFTER_S = 10.0
"""A ``playing`` stream with no processed frame for longer than this fails the health check."""
DEFAULT_DOWN_AFTER_S = 30.0
"""A stream reconnecting (or failed) for longer than this, without playing, fails the check."""
MAX_PORT = 65535
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Histogram bounds for stage and end-to-end latency: 1 ms to 10 s (+Inf above)."""
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32)
OTHER_ACTION = "other"
"""The action label counted for clip decisions outside `tps.vocabulary.ACTIONS`."""
INITIAL_STATE = "starting"
"""The state of a stream from its declaration until the supervisor reports another."""
STALLABLE_STATE = "playing"
"""The only state in which a stream without fresh frames counts as stuck."""
DOWN_STATES = frozenset({"reconnecting", "error"})
"""States that mean the source is lost; it stays down (``starting`` again included) until it
plays again or ends."""
UP_STATES = frozenset({"playing", "eos", "stopped"})
SERVE_POLL_S = 0.1
"""How often the serving loop checks for shutdown; bounds `MetricsServer.stop`."""
REQUEST_TIMEOUT_S = 5.0
"""Socket timeout of one HTTP request, so a silent client cannot hold a handler thread."""
STOP_TIMEOUT_S = 5.0
"""Longest wait for the serving thread to end in `MetricsServer.stop`."""
AGE_DECIMALS = 3
HEALTH_PATH = "/healthz"
LIVE_PATH = "/livez"
METRICS_PATH = "/metrics"
JSON_CONTENT_TYPE = "application/json"


class MetricsError(Exception):
    """A metrics address is malformed or in use, or a label value is outside its bounded set."""


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (or ``[IPV6]:PORT``) into host and port; port 0 takes a free one.

    Raises:
        MetricsError: naming the text and the accepted form.
    """
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 host must be bracketed, or the port would be ambiguous
    if not colon or not host or not port.isdigit() or int(port) > MAX_PORT:
        raise MetricsError(
            f"metrics address {text!r}: expected HOST:PORT or [IPV6]:PORT with a port 0-{MAX_PORT}"
        )
    return host, int(port)


class MetricsSettings(Section):
    """The ``metrics`` section of the pipeline config."""

    enabled: bool = Field(True, description="serve /metrics and /healthz over HTTP")
    address: str = Field(
        DEFAULT_ADDRESS, description="HOST:PORT to serve on; port 0 takes a free port"
    )
    stall_after_s: float = Field(
        DEFAULT_STALL_AFTER_S,
        gt=0,
        description="seconds a playing stream may go without a processed frame before /healthz "
        "answers 503",
    )
    down_after_s: float = Field(
        DEFAULT_DOWN_AFTER_S,
        gt=0,
        description="grace period: seconds a stream may be reconnecting (or failed) without "
        "playing again before /healthz answers 503",
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        try:
            parse_address(value)
        except MetricsError as error:
            raise ValueError(str(error)) from error
        return value


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """One stream as the health check sees it.

    Attributes:
        state: the current source state, one of `STREAM_STATES`.
        age_s: seconds since the last processed frame, None before the first.
        stalled: ``playing`` and no progress (a processed frame, or entering ``playing``) for more
            than the stall limit.
        down: the source was lost (reconnecting, or failed) and has not played again for more
            than the grace period.
    """

    state: str
    age_s: float | None
    stalled: bool
    down: bool = False


@dataclass(slots=True)
class _StreamClock:
    """Per-stream times (on the `Metrics` clock) behind the health check."""

    state: str
    state_since: float
    last_frame: float | None = None
    down_since: float | None = None
    """When the source was lost (entered a `DOWN_STATES` state) and has not played since."""


def _check(value: str, allowed: Iterable[str], what: str) -> None:
    if value not in allowed:
        raise MetricsError(f"{what}: expected one of {tuple(allowed)}, got {value!r}")


class Metrics:
    """Every pipeline series in one private registry, updated from any thread.

    Args:
        streams: stream ids from the config; more can be declared with `add_stream`. Updates for
            an undeclared stream raise, which keeps the ``stream`` label bounded.
        clock: monotonic seconds; injectable so tests can move time without sleeping. Used for
            stage timing, frame ages and the health check.

    Raises:
        MetricsError: from any update naming an undeclared stream, an unknown state or event
            type, or a negative count.
    """

    def __init__(
        self, streams: Iterable[str] = (), *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, _StreamClock] = {}

        self._frames_in = self._family(
            Counter, "frames_in_total", "Frames that entered the pipeline.", ("stream",)
        )
        self._frames_processed = self._family(
            Counter, "frames_processed_total", "Frames whose results were published.", ("stream",)
        )
        self._frames_dropped = self._family(
            Counter,
            "frames_dropped_total",
            "Frames dropped before processing (leaky queues).",
            ("stream",),
        )
        self._stage_seconds = self._family(
            Histogram,
            "stage_seconds",
            "Time spent in one call of a pipeline stage.",
            ("stage",),
            buckets=LATENCY_BUCKETS_S,
        )
        self._latency_seconds = self._family(
            Histogram,
            "end_to_end_latency_seconds",
            "Time from a frame entering the pipeline to its event being published.",
            ("stream",),
            buckets=LATENCY_BUCKETS_S,
        )
        self._batch_size = self._family(
            Histogram,
            "batch_size",
            "Requests served by one batched network call.",
            ("network",),
            buckets=BATCH_SIZE_BUCKETS,
        )
        self._queue_depth = self._family(
            Gauge, "queue_depth", "Items waiting in a queue now.", ("stream", "queue")
        )
        self._clip_decisions = self._family(
            Counter, "clip_decisions_total", "Clip-level action decisions.", ("stream", "action")
        )
        self._events_published = self._family(
            Counter,
            "events_published_total",
            "Events sent on the event stream.",
            ("stream", "type"),
        )
        self._send_errors = self._family(
            Counter,
            "event_send_errors_total",
            "Events the transport refused (a subscriber was full).",
        )
        self._source_state = self._family(
            Gauge,
            "source_state",
            "1 for the current state of a stream's source, 0 for the others.",
            ("stream", "state"),
        )
        self._reconnects = self._family(
            Counter,
            "source_reconnects_total",
            "Reconnection attempts of a stream's source.",
            ("stream",),
        )
        for stream in streams:
            self.add_stream(stream)

    def _family(
        self,
        kind: type[FamilyT],
        name: str,
        documentation: str,
        labels: tuple[str, ...] = (),
        **options: Any,
    ) -> FamilyT:
        """A metric family of `kind` named ``tps_<name>`` in this object's registry."""
        return kind(
            name, documentation, labels, namespace=NAMESPACE, registry=self.registry, **options
        )

    @property
    def streams(self) -> tuple[str, ...]:
        """The declared stream ids, in declaration order."""
        with self._lock:
            return tuple(self._streams)

    def add_stream(self, stream: str) -> None:
        """Declare `stream` in state ``starting`` and create its zero-valued series.

        Raises:
            MetricsError: the stream is already declared.
        """
        with self._lock:
            if stream in self._streams:
                raise MetricsError(f"stream {stream!r}: already declared")
            self._streams[stream] = _StreamClock(INITIAL_STATE, self._clock())
        for family in (self._frames_in, self._frames_processed, self._frames_dropped):
            family.labels(stream)
        self._reconnects.labels(stream)
        self._set_state_gauge(stream, INITIAL_STATE)

    def _require(self, stream: str) -> _StreamClock:
        """The stream's clock; the caller holds the lock."""
        try:
            return self._streams[stream]
        except KeyError:
            raise MetricsError(
                f"stream {stream!r}: not declared (declared: {tuple(self._streams)})"
            ) from None

    def _check_stream(self, stream: str) -> None:
        with self._lock:
            self._require(stream)

    def frame_in(self, stream: str) -> None:
        """Count a frame entering the pipeline of `stream`."""
        self._check_stream(stream)
        self._frames_in.labels(stream).inc()

    def frame_processed(self, stream: str, latency_s: float | None = None) -> None:
        """Count a frame whose results were published, and mark the stream as making progress.

        Args:
            stream: the stream id.
            latency_s: seconds from the frame entering the pipeline to its event being published;
                None when unknown.
        """
        with self._lock:
            self._require(stream).last_frame = self._clock()
        self._frames_processed.labels(stream).inc()
        if latency_s is not None:
            self._latency_seconds.labels(stream).observe(latency_s)

    def frame_dropped(self, stream: str, n: int = 1) -> None:
        """Count `n` frames of `stream` dropped before processing."""
        if n < 0:
            raise MetricsError(f"dropped frames of {stream!r}: expected n >= 0, got {n}")
        self._check_stream(stream)
        self._frames_dropped.labels(stream).inc(n)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record one call of `stage` that took `seconds`."""
        self._stage_seconds.labels(stage).observe(seconds)

    @contextmanager
    def stage_time(self, stage: str) -> Iterator[None]:
        """Time the ``with`` body as one call of `stage` (also when it raises)."""
        start = self._clock()
        try:
            yield
        finally:
            self.observe_stage(stage, self._clock() - start)

    def batch(self, network: str, size: int) -> None:
        """Record one batched call of `network` serving `size` requests."""
        if size < 1:
            raise MetricsError(f"batch of {network!r}: expected size >= 1, got {size}")
        self._batch_size.labels(network).observe(size)

    def queue_depth(self, stream: str, queue: str, depth: int) -> None:
        """Set the number of items waiting in `queue` of `stream` now."""
        self._check_stream(stream)
        self._queue_depth.labels(stream, queue).set(depth)

    def clip_decision(self, stream: str, action: str) -> None:
        """Count a clip-level decision; actions outside the vocabulary count as `OTHER_ACTION`."""
        self._check_stream(stream)
        self._clip_decisions.labels(stream, action if action in ACTIONS else OTHER_ACTION).inc()

    def event_published(self, stream: str, event_type: str) -> None:
        """Count one event of `event_type` (one of `EVENT_TYPES`) sent for `stream`."""
        _check(event_type, EVENT_TYPES, "event type")
        self._check_stream(stream)
        self._events_published.labels(stream, event_type).inc()

    def send_error(self) -> None:
        """Count one event the transport refused."""
        self._send_errors.inc()

    def source_state(self, stream: str, state: str) -> None:
        """Record that the source of `stream` is now in `state` (one of `STREAM_STATES`).

        Entering ``playing`` restarts the stall timer, so a stream that just (re)connected has
        ``stall_after_s`` to deliver its first frame.
        """
        _check(state, STREAM_STATES, f"state of stream {stream!r}")
        with self._lock:
            entry = self._require(stream)
            if entry.state != state:
                entry.state = state
                entry.state_since = self._clock()
            if state in UP_STATES:
                entry.down_since = None
            elif state in DOWN_STATES and entry.down_since is None:
                entry.down_since = entry.state_since
            # The gauge is written under the lock so concurrent changes cannot leave two 1s.
            self._set_state_gauge(stream, state)

    def _set_state_gauge(self, stream: str, state: str) -> None:
        for name in STREAM_STATES:
            self._source_state.labels(stream, name).set(1 if name == state else 0)

    def reconnect(self, stream: str) -> None:
        """Count one reconnection attempt of the source of `stream`."""
        self._check_stream(stream)
        self._reconnects.labels(stream).inc()

    def last_frame_time(self, stream: str) -> float | None:
        """When (on the `Metrics` clock) `stream` last processed a frame; None before the first."""
        with self._lock:
            return self._require(stream).last_frame

    def health(
        self,
        stall_after_s: float = DEFAULT_STALL_AFTER_S,
        down_after_s: float = DEFAULT_DOWN_AFTER_S,
    ) -> dict[str, StreamHealth]:
        """Every declared stream's state, frame age and whether it is stalled or down.

        A stream is stalled only in ``playing``, when neither a processed frame nor the move into
        ``playing`` happened within `stall_after_s`; ``reconnecting``, ``eos``, ``stopped`` and the
        others are reported but never stalled. A stream is down when it was lost (``reconnecting``
        or ``error``) more than `down_after_s` ago and has not played or ended since.
        """
        now = self._clock()
        report = {}
        with self._lock:
            for stream, entry in self._streams.items():
                age_s = None if entry.last_frame is None else now - entry.last_frame
                progress = entry.state_since
                if entry.last_frame is not None:
                    progress = max(progress, entry.last_frame)
                stalled = entry.state == STALLABLE_STATE and now - progress > stall_after_s
                down = entry.down_since is not None and now - entry.down_since > down_after_s
                report[stream] = StreamHealth(entry.state, age_s, stalled, down)
        return report

    def render(self) -> bytes:
        """Every series in the Prometheus text format (`CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


def health_body(
    report: dict[str, StreamHealth], down_fails: bool = True
) -> tuple[HTTPStatus, dict[str, Any]]:
    """The ``/healthz`` (or, without `down_fails`, ``/livez``) status and JSON body of a report."""
    stalled = [stream for stream, health in report.items() if health.stalled]
    down = [stream for stream, health in report.items() if health.down]
    body: dict[str, Any] = {
        "status": "stalled" if stalled else "down" if down else "ok",
        "streams": {
            stream: {
                "state": health.state,
                "age_s": None if health.age_s is None else round(health.age_s, AGE_DECIMALS),
            }
            for stream, health in report.items()
        },
    }
    if stalled:
        body["stalled"] = stalled
    if down:
        body["down"] = down
    if stalled or (down and down_fails):
        return HTTPStatus.SERVICE_UNAVAILABLE, body
    return HTTPStatus.OK, body


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that knows its `Metrics` and skips the reverse DNS lookup."""

    metrics: Metrics
    stall_after_s: float
    down_after_s: float

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS round trip we do not need.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = port


class _Server6(_Server):
    """`_Server` on an IPv6 socket (a host such as ``::1``)."""

    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Answers GET /metrics and GET /healthz; anything else is 404."""

    server: _Server
    timeout = REQUEST_TIMEOUT_S

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == METRICS_PATH:
            self._reply(HTTPStatus.OK, CONTENT_TYPE_LATEST, self.server.metrics.render())
        elif path in (HEALTH_PATH, LIVE_PATH):
            server = self.server
            status, body = health_body(
                server.metrics.health(server.stall_after_s, server.down_after_s),
                down_fails=path == HEALTH_PATH,
            )
            self._reply(status, JSON_CONTENT_TYPE, json.dumps(body).encode())
        else:
            message = f"{path}: expected {METRICS_PATH}, {HEALTH_PATH} or {LIVE_PATH}\n"
            self._reply(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", message.encode())

    def _reply(self, status: HTTPStatus, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to the module logger at DEBUG instead of stderr."""
        log.debug("%s " + format, self.address_string(), *args)


class MetricsServer:
    """Serves `Metrics` on ``/metrics`` and ``/healthz`` from a daemon thread.

    The socket is bound by the constructor (so a busy address fails early and `address` is known
    at once); `start` begins answering; `stop` ends within about `SERVE_POLL_S` plus
    `STOP_TIMEOUT_S` at worst. Also a context manager that starts and stops.

    Args:
        metrics: what to serve.
        host: interface to bind; loopback unless configured otherwise.
        port: TCP port; 0 takes a free one (see `address`).
        stall_after_s: seconds a ``playing`` stream may go without a processed frame before
            ``/healthz`` answers 503.
        down_after_s: seconds a lost stream may go without playing again before ``/healthz``
            answers 503.

    Raises:
        MetricsError: the address is in use or cannot be bound.
    """

    def __init__(
        self,
        metrics: Metrics,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        stall_after_s: float = DEFAULT_STALL_AFTER_S,
        down_after_s: float = DEFAULT_DOWN_AFTER_S,
    ) -> None:
        for name, value in (("stall_after_s", stall_after_s), ("down_after_s", down_after_s)):
            if value <= 0:
                raise MetricsError(f"{name}: expected > 0, got {value}")
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _Handler)
        except OSError as error:
            reason = "already in use" if error.errno == errno.EADDRINUSE else error.strerror
            raise MetricsError(f"metrics address {host}:{port}: cannot bind ({reason})") from error
        self._server.metrics = metrics
        self._server.stall_after_s = stall_after_s
        self._server.down_after_s = down_after_s
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``, with the real port when 0 was asked for."""
        host, port = self._server.server_address[:2]
        return str(host), port

    @property
    def url(self) -> str:
        """``http://host:port`` of the server (IPv6 hosts bracketed)."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Start answering requests in a daemon thread.

        Raises:
            MetricsError: already started, or stopped (a stopped server cannot restart).
        """
        if self._thread is not None or self._closed:
            state = "stopped" if self._closed else "already started"
            raise MetricsError(f"metrics server {self.url}: cannot start ({state})")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(SERVE_POLL_S,),
            name="metrics-http",
            daemon=True,
        )
        self._thread.start()
        log.info("serving metrics on %s%s and health on %s", self.url, METRICS_PATH, HEALTH_PATH)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice or without `start`."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            thread.join(STOP_TIMEOUT_S)
            if thread.is_alive():
                log.warning("metrics server thread still running after %.1f s", STOP_TIMEOUT_S)
        if not self._closed:
            self._closed = True
            self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
