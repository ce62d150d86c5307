"""The event broker: every worker's events to every subscriber, through one ZeroMQ XSUB/XPUB proxy.

Scaled out, a site runs N workers (``run.py run --shard i/N``) and one broker::

    worker 0 ──┐  publish '>tcp://broker:5559'           subscribe tcp://broker:5560
    worker 1 ──┼──► frontend XSUB ═══ proxy ═══ backend XPUB ──► recorder, dashboards, ...
    worker 2 ──┘                        │ capture
                                        ▼
                              counting thread ──► tps_broker_* metrics

Workers connect their XPUB sockets to the frontend; subscribers connect to the backend. The
proxy forwards events downstream and subscriptions upstream, so a worker's offline-mode
`EventPublisher.wait_for_subscriber` still waits for a real subscriber behind the broker: the
broker's XSUB replays its subscriptions to every worker that connects.

`zmq.proxy_steerable` runs in its own thread on sockets that only it touches; a PAIR control
socket stops it (``TERMINATE``) and a PUB capture socket hands a copy of every message, both
directions, to a counting thread. Capture never slows forwarding: when the counting thread
falls `CAPTURE_HWM` messages behind, ZeroMQ drops copies, so under such overload the counts are
a lower bound. Messages are classified by shape: a one-frame message starting with byte 1 or 0
is a subscription or unsubscription (travelling upstream); anything else is an event.

CurveZMQ (optional): both broker sockets are CURVE servers with the broker's key pair; a ZAP
authenticator admits the client public keys found in the certificate files of an allow folder
(``zmq.auth.create_certificates`` format), or any client when no folder is given (encryption
without authentication).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import zmq
import zmq.auth
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from zmq.auth.thread import ThreadAuthenticator

from parsing.events import EVENT_TYPES
from pipeline.metrics import NAMESPACE, StreamHealth
from transport.zmq import SUBSCRIBE_FLAG, PublisherError, parse_endpoint

log = logging.getLogger(__name__)

DEFAULT_FRONTEND = "tcp://*:5559"
"""Where workers publish (they connect with ``>tcp://broker:5559``)."""
DEFAULT_BACKEND = "tcp://*:5560"
"""Where subscribers connect."""
DEFAULT_HWM = 10000
"""Messages queued per peer on each side before ZeroMQ drops (0: unlimited)."""
CAPTURE_HWM = 100000
"""Captured copies queued for the counting thread before copies (never events) are dropped."""
CAPTURE_POLL_MS = 100
"""Counting-thread poll slice; bounds how long it takes to notice that the proxy ended."""
STOP_TIMEOUT_S = 5.0
"""Longest wait for each broker thread to end in `Broker.stop`."""
LINGER_MS = 1000
"""How long closing the backend keeps delivering queued events."""
TERMINATE = b"TERMINATE"
"""The `zmq.proxy_steerable` control command that ends the proxy."""
SUBSCRIPTION_FLAGS = {SUBSCRIBE_FLAG: "subscribe", 0: "unsubscribe"}
OTHER_TYPE = "other"
"""The ``type`` label of an event whose topic does not end in one of `EVENT_TYPES`."""
PROXY_HEALTH_KEY = "proxy"
BROKER_NAMESPACE = f"{NAMESPACE}_broker"


class BrokerError(Exception):
    """A broker endpoint is malformed or in use, or its CURVE keys cannot be loaded."""


class BrokerMetrics:
    """The broker's Prometheus series, in a registry of their own (``tps_broker_`` prefix).

    =============================================  =======  =====================================
    ``tps_broker_messages_forwarded_total``        counter  {type}: events forwarded downstream
    ``tps_broker_bytes_forwarded_total``           counter  event bytes (all frames) forwarded
    ``tps_broker_subscriptions``                   gauge    distinct topic prefixes subscribed now
    ``tps_broker_subscription_changes_total``      counter  {change}: subscribe / unsubscribe
    ``tps_broker_up``                              gauge    1 while the proxy forwards
    =============================================  =======  =====================================

    Also serves `pipeline.metrics.MetricsServer` (``render`` and ``health``), so ``/healthz``
    answers 503 once the proxy has stopped.

    Args:
        clock: monotonic seconds, for the age of the last forwarded event.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._last_event: float | None = None
        options = {"namespace": BROKER_NAMESPACE, "registry": self.registry}
        self._forwarded = Counter(
            "messages_forwarded_total", "Events forwarded to subscribers.", ("type",), **options
        )
        self._bytes = Counter(
            "bytes_forwarded_total", "Bytes of forwarded events, all frames.", **options
        )
        self._subscriptions = Gauge(
            "subscriptions", "Distinct topic prefixes subscribed to now.", **options
        )
        self._changes = Counter(
            "subscription_changes_total", "Subscriptions and unsubscriptions.", ("change",),
            **options,
        )  # fmt: skip
        self._up = Gauge("up", "1 while the proxy forwards, else 0.", **options)
        for event_type in (*EVENT_TYPES, OTHER_TYPE):
            self._forwarded.labels(event_type)
        for change in SUBSCRIPTION_FLAGS.values():
            self._changes.labels(change)

    def observe(self, frames: list[bytes]) -> None:
        """Count one captured message (a copy of what the proxy passed, either direction)."""
        if len(frames) == 1 and frames[0][:1] and frames[0][0] in SUBSCRIPTION_FLAGS:
            change = SUBSCRIPTION_FLAGS[frames[0][0]]
            self._changes.labels(change).inc()
            if change == "subscribe":
                self._subscriptions.inc()
            else:
                self._subscriptions.dec()
            return
        event_type = frames[0].rpartition(b"/")[2].decode(errors="replace")
        self._forwarded.labels(event_type if event_type in EVENT_TYPES else OTHER_TYPE).inc()
        self._bytes.inc(sum(len(frame) for frame in frames))
        self._last_event = self._clock()

    def set_up(self, up: bool) -> None:
        """Record whether the proxy is forwarding."""
        self._up.set(1 if up else 0)

    def value(self, name: str, **labels: str) -> float:
        """The current value of series ``tps_broker_<name>`` with `labels` (0 when absent)."""
        value = self.registry.get_sample_value(f"{BROKER_NAMESPACE}_{name}", labels)
        return 0.0 if value is None else value

    @property
    def subscriptions(self) -> int:
        """Distinct topic prefixes subscribed to now (as counted so far)."""
        return int(self.value("subscriptions"))

    def forwarded(self, event_type: str) -> int:
        """Events of `event_type` (or `OTHER_TYPE`) forwarded so far."""
        return int(self.value("messages_forwarded_total", type=event_type))

    def render(self) -> bytes:
        """Every series in the Prometheus text format."""
        return generate_latest(self.registry)

    def health(self, stall_after_s: float, down_after_s: float) -> dict[str, StreamHealth]:
        """One entry, `PROXY_HEALTH_KEY`: ``playing`` while forwarding, else ``stopped`` (503).

        The age is the time since the last forwarded event; a quiet site is not unhealthy, so
        neither `stall_after_s` nor `down_after_s` (the `Metrics.health` signature the HTTP
        server calls) is applied to it.
        """
        up = self.value("up") == 1
        age_s = None if self._last_event is None else self._clock() - self._last_event
        return {PROXY_HEALTH_KEY: StreamHealth("playing" if up else "stopped", age_s, not up)}


@dataclass(frozen=True, slots=True)
class BrokerCurve:
    """The broker's CurveZMQ key pair and, optionally, the folder of client keys to admit."""

    public: bytes
    secret: bytes
    allow: Path | None = None
    """Folder of client certificates (``*.key``); None admits any client."""

    @classmethod
    def from_files(cls, secret_file: Path, allow: Path | None = None) -> BrokerCurve:
        """Load the broker's secret certificate (``name.key_secret`` written by
        ``zmq.auth.create_certificates``).

        Raises:
            BrokerError: the file is missing or unreadable, has no secret key, or `allow` is not
                a folder.
        """
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as error:
            raise BrokerError(f"--curve-secret {secret_file}: cannot load ({error})") from error
        if secret is None:
            raise BrokerError(
                f"--curve-secret {secret_file}: expected a secret certificate "
                "(public-key and secret-key), got a public one"
            )
        if allow is not None and not allow.is_dir():
            raise BrokerError(f"--curve-allow {allow}: expected a folder of client certificates")
        return cls(public, secret, allow)


class Broker:
    """A running XSUB/XPUB proxy between publishing workers and subscribers.

    The constructor binds both sockets (a busy or malformed address fails at once; `frontend`
    and `backend` tell the real ports after ``*``); `start` begins forwarding; `stop` ends within
    about ``2 * STOP_TIMEOUT_S`` at worst. Also a context manager that starts and stops.

    Args:
        frontend: where workers publish, e.g. ``tcp://*:5559`` (bound; ``@`` allowed).
        backend: where subscribers connect, e.g. ``tcp://*:5560`` (bound).
        hwm: messages queued per peer on each side (0: unlimited).
        curve: CurveZMQ keys and allowed clients; None for plain TCP.
        metrics: where to count; a fresh `BrokerMetrics` when None.

    Raises:
        BrokerError: an endpoint that connects, is malformed or cannot be bound; CURVE missing
            from libzmq.
    """

    def __init__(
        self,
        frontend: str = DEFAULT_FRONTEND,
        backend: str = DEFAULT_BACKEND,
        *,
        hwm: int = DEFAULT_HWM,
        curve: BrokerCurve | None = None,
        metrics: BrokerMetrics | None = None,
    ) -> None:
        if curve is not None and not zmq.has("curve"):
            raise BrokerError(f"CURVE security: not available in libzmq {zmq.zmq_version()}")
        self.metrics = metrics or BrokerMetrics()
        self._context = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._sockets: list[zmq.Socket] = []
        self._proxy_thread: threading.Thread | None = None
        self._count_thread: threading.Thread | None = None
        self._proxy_done = threading.Event()
        self._closed = False
        try:
            if curve is not None:
                self._auth = ThreadAuthenticator(self._context, log=log)
                self._auth.start()
                location = str(curve.allow) if curve.allow else zmq.auth.CURVE_ALLOW_ANY
                self._auth.configure_curve(domain="*", location=location)
            self._frontend = self._socket(zmq.XSUB, zmq.RCVHWM, hwm, curve)
            self.frontend = self._bind(self._frontend, frontend, "frontend")
            self._backend = self._socket(zmq.XPUB, zmq.SNDHWM, hwm, curve)
            self.backend = self._bind(self._backend, backend, "backend")
            name = f"inproc://broker-{id(self)}"
            self._capture = self._socket(zmq.PUB, zmq.SNDHWM, CAPTURE_HWM)
            self._capture.bind(f"{name}-capture")
            self._capture_in = self._socket(zmq.SUB, zmq.RCVHWM, CAPTURE_HWM)
            self._capture_in.setsockopt(zmq.SUBSCRIBE, b"")
            self._capture_in.connect(f"{name}-capture")
            self._control = self._socket(zmq.PAIR)
            self._control.bind(f"{name}-control")
            self._control_out = self._socket(zmq.PAIR)
            self._control_out.connect(f"{name}-control")
        except BaseException:
            self._close_sockets()
            raise
        log.info(
            "broker: workers publish to %s, subscribers connect to %s%s",
            self.frontend,
            self.backend,
            " (CURVE)" if curve else "",
        )

    def _socket(
        self,
        kind: int,
        hwm_option: int | None = None,
        hwm: int = 0,
        curve: BrokerCurve | None = None,
    ) -> zmq.Socket:
        socket = self._context.socket(kind)
        self._sockets.append(socket)
        socket.setsockopt(zmq.LINGER, 0)
        if hwm_option is not None:
            socket.setsockopt(hwm_option, hwm)
        if curve is not None:
            socket.setsockopt(zmq.CURVE_SERVER, 1)
            socket.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        return socket

    @staticmethod
    def _bind(socket: zmq.Socket, text: str, role: str) -> str:
        try:
            endpoint = parse_endpoint(text, bind_by_default=True)
        except PublisherError as error:
            raise BrokerError(f"{role} {error}") from None
        if not endpoint.bind:
            raise BrokerError(f"{role} endpoint {text!r}: expected an address to bind, not '>'")
        try:
            socket.bind(endpoint.address)
        except zmq.ZMQError as error:
            reason = "address already in use" if error.errno == zmq.EADDRINUSE else str(error)
            raise BrokerError(f"{role} endpoint {text!r}: cannot bind ({reason})") from error
        return socket.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def running(self) -> bool:
        """Whether the proxy thread is forwarding."""
        return self._proxy_thread is not None and self._proxy_thread.is_alive()

    def start(self) -> None:
        """Start forwarding (and counting) in two daemon threads.

        Raises:
            BrokerError: already started, or stopped.
        """
        if self._proxy_thread is not None or self._closed:
            state = "stopped" if self._closed else "already started"
            raise BrokerError(f"broker {self.frontend} -> {self.backend}: cannot start ({state})")
        self._proxy_thread = threading.Thread(target=self._proxy, name="broker-proxy", daemon=True)
        self._count_thread = threading.Thread(target=self._count, name="broker-count", daemon=True)
        self.metrics.set_up(True)
        self._proxy_thread.start()
        self._count_thread.start()

    def _proxy(self) -> None:
        try:
            zmq.proxy_steerable(self._frontend, self._backend, self._capture, self._control)
        except zmq.ZMQError as error:  # the context was torn down under it
            log.error("broker proxy ended: %s", error)
        finally:
            self.metrics.set_up(False)
            self._proxy_done.set()

    def _count(self) -> None:
        """Count captured copies until the proxy has ended and the capture queue is drained."""
        while True:
            if self._capture_in.poll(CAPTURE_POLL_MS, zmq.POLLIN):
                self.metrics.observe(self._capture_in.recv_multipart())
            elif self._proxy_done.is_set():
                return

    def stop(self) -> None:
        """Stop forwarding and close every socket; safe to call twice or without `start`."""
        if self._closed:
            return
        self._closed = True
        proxy, counter = self._proxy_thread, self._count_thread
        if proxy is not None and proxy.is_alive():
            self._control_out.send(TERMINATE)
            proxy.join(STOP_TIMEOUT_S)
        if counter is not None:
            counter.join(STOP_TIMEOUT_S)
        if (proxy is not None and proxy.is_alive()) or (counter is not None and counter.is_alive()):
            log.warning("broker threads still running after %.1f s each", STOP_TIMEOUT_S)
            return  # closing sockets under a running thread would crash libzmq
        self._backend.setsockopt(zmq.LINGER, LINGER_MS)
        self._close_sockets()
        log.info(
            "broker stopped: %s events forwarded",
            ", ".join(f"{t} {self.metrics.forwarded(t)}" for t in (*EVENT_TYPES, OTHER_TYPE)),
        )

    def _close_sockets(self) -> None:
        for socket in self._sockets:
            socket.close()
        if self._auth is not None:
            self._auth.stop()
        self._context.term()

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
