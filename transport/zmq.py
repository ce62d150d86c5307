"""The ZeroMQ transport of the event stream: `EventPublisher` and its other end, `EventSubscriber`.

The publish element sends with `EventPublisher` (a plain class, testable without GStreamer); the
``subscribe`` and ``record`` commands and the tests receive with `EventSubscriber`.

Endpoints follow ZeroMQ's own convention: ``@tcp://127.0.0.1:5555`` binds, ``>tcp://host:5555``
connects, and a bare ``tcp://...`` binds for the publisher and connects for the subscriber. Binding
to port ``*`` (or 0) takes a free port; `EventPublisher.endpoint` tells which.

Delivery, in short: `EventPublisher.publish` never blocks. Each subscriber has a queue of ``hwm``
messages; when a subscriber's queue is full (it is slow or stalled) the message is refused, counted
in `EventPublisher.send_errors`, and the caller moves on. ``XPUB_NODROP`` makes that refusal visible
(plain PUB drops silently); the price is that a stalled subscriber, once its queue is full, makes
the message miss every subscriber, so the queues are generous. Offline runs that must lose nothing
use ``hwm=0`` (no limit; memory grows while a subscriber lags). Messages queued when the publisher
closes are still delivered for up to ``linger_ms``.

Threads: a ZeroMQ socket must not be used from two threads at once, and several GStreamer streaming
threads publish through one publisher, so every socket call runs under one lock. A non-blocking send
holds it for microseconds; a sender thread with its own queue would add a copy, a thread to shut
down and a second queue bound, for no gain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from parsing.events import Event, EventError, decode, topic
from parsing.results import FINAL_STATES

log = logging.getLogger(__name__)

DEFAULT_HWM = 1000
"""Messages queued per subscriber before publish() refuses more (~30 s of a 30 fps stream)."""
DEFAULT_LINGER_MS = 2000
"""How long close() keeps delivering queued messages."""
DEFAULT_WAIT_FOR_SUBSCRIBER_S = 2.0
WAIT_SLICE_S = 0.05
"""wait_for_subscriber() polls in slices this long, releasing the lock between them."""
SUBSCRIBE_FLAG = 1
"""First byte of an XPUB subscription message: 1 subscribe, 0 unsubscribe; the prefix follows."""

BIND_PREFIX = "@"
CONNECT_PREFIX = ">"
TRANSPORTS: tuple[str, ...] = ("tcp", "ipc", "inproc")
ANY_PORT = "*"
MAX_PORT = 65535
CURVE_KEY_CHARS = 40
"""A Z85-encoded CurveZMQ key."""
ENDPOINT_FORMS = "[@|>]tcp://HOST:PORT, [@|>]ipc://PATH or [@|>]inproc://NAME"


class PublisherError(Exception):
    """An endpoint is malformed or cannot be bound, connected or secured."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ZeroMQ address and whether to bind it (else connect)."""

    address: str
    bind: bool

    def __str__(self) -> str:
        return (BIND_PREFIX if self.bind else CONNECT_PREFIX) + self.address


def parse_endpoint(text: str, *, bind_by_default: bool) -> Endpoint:
    """``@addr`` binds, ``>addr`` connects, a bare address uses `bind_by_default`.

    Raises:
        PublisherError: naming the endpoint and the accepted forms.
    """
    bind = bind_by_default
    address = text
    if text[:1] in (BIND_PREFIX, CONNECT_PREFIX):
        bind = text[0] == BIND_PREFIX
        address = text[1:]
    transport, separator, rest = address.partition("://")
    if not separator or transport not in TRANSPORTS or not rest:
        raise PublisherError(f"endpoint {text!r}: expected {ENDPOINT_FORMS}")
    if transport == "tcp":
        host, colon, port = rest.rpartition(":")
        port_ok = port.isdigit() and int(port) <= MAX_PORT
        if not colon or not host or not (port_ok or (bind and port == ANY_PORT)):
            wanted = f"a port 0-{MAX_PORT}" + (" or '*'" if bind else "")
            raise PublisherError(f"endpoint {text!r}: expected tcp://HOST:PORT with {wanted}")
    return Endpoint(address, bind)


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """A CurveZMQ key pair, both Z85-encoded (40 characters)."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> CurveKeys:
        """A fresh random key pair."""
        public, secret = zmq.curve_keypair()
        return cls(public, secret)

    @classmethod
    def from_certificate(cls, path: Path) -> CurveKeys:
        """The key pair in a secret certificate (``NAME.key_secret`` of ``run.py keys``).

        Raises:
            PublisherError: the file is missing or unreadable, or holds no secret key.
        """
        public, secret = _load_certificate(path)
        if secret is None:
            raise PublisherError(
                f"CURVE certificate {path}: expected a secret certificate (NAME.key_secret), "
                "got a public one"
            )
        return cls(public, secret)


def _load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise PublisherError(f"CURVE certificate {path}: cannot load ({error})") from error
    return public, secret


def load_public_key(path: Path) -> bytes:
    """The Z85 public key of a certificate, public (``NAME.key``) or secret.

    Raises:
        PublisherError: the file is missing or unreadable.
    """
    return _load_certificate(path)[0]


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise PublisherError(f"CURVE security: not available in libzmq {zmq.zmq_version()}")


def _open(socket: zmq.Socket, endpoint: Endpoint) -> str:
    """Bind or connect `socket`; returns the resolved address (the real port after ``*``)."""
    try:
        if endpoint.bind:
            socket.bind(endpoint.address)
            return socket.getsockopt_string(zmq.LAST_ENDPOINT)
        socket.connect(endpoint.address)
    except zmq.ZMQError as error:
        verb = "bind" if endpoint.bind else "connect"
        reason = "address already in use" if error.errno == zmq.EADDRINUSE else str(error)
        raise PublisherError(f"endpoint {endpoint}: cannot {verb} ({reason})") from error
    return endpoint.address


class EventPublisher:
    """Publishes ``[topic, payload]`` messages on a ZeroMQ XPUB socket, never blocking the caller.

    XPUB (rather than PUB) hands subscriptions to the publisher, which lets `wait_for_subscriber`
    hold an offline run until its recorder is listening, and `subscriptions` report listeners.

    Args:
        endpoint: where to publish; see the module docstring (bare addresses bind).
        hwm: messages queued per subscriber before publish() refuses more; 0 means no limit.
        linger_ms: how long close() keeps delivering queued messages.
        wait_for_subscriber_s: when set, the constructor waits up to this long for a subscription
            (offline mode: the first events must not be lost to a slow joiner).
        curve: this end's CurveZMQ key pair. Binding, it is the server's pair: the stream is
            encrypted and subscribers need its public key. Connecting (to a CURVE broker), it
            is the client's pair and `curve_server_key` is required.
        curve_allow: binding with `curve`: a folder of client certificates (``*.key``); a ZAP
            authenticator admits only those clients. None admits any CURVE client (encryption
            without authentication).
        curve_server_key: connecting with `curve`: the Z85 public key of the server (broker).

    Raises:
        PublisherError: malformed endpoint, address in use, CURVE unavailable, CURVE options
            that do not fit the endpoint.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        hwm: int = DEFAULT_HWM,
        linger_ms: int = DEFAULT_LINGER_MS,
        wait_for_subscriber_s: float | None = None,
        curve: CurveKeys | None = None,
        curve_allow: Path | None = None,
        curve_server_key: bytes | None = None,
    ) -> None:
        parsed = parse_endpoint(endpoint, bind_by_default=True)
        if curve is not None:
            _require_curve()
        _check_curve_options(parsed, curve, curve_allow, curve_server_key)
        self._lock = threading.Lock()
        self._published = 0
        self._send_errors = 0
        self._subscriptions = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, linger_ms)
        self._socket.setsockopt(zmq.XPUB_NODROP, 1)
        self._auth: ThreadAuthenticator | None = None
        if curve is not None and curve_server_key is not None:
            _set_curve_client(self._socket, curve, curve_server_key)
        elif curve is not None:
            if curve_allow is not None:
                self._auth = ThreadAuthenticator(self._context, log=log)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(curve_allow))
            self._socket.setsockopt(zmq.CURVE_SERVER, 1)
            self._socket.setsockopt(zmq.CURVE_SECRETKEY, curve.secret)
        try:
            self._endpoint = _open(self._socket, parsed)
        except PublisherError:
            self._socket.close(linger=0)
            self._stop_auth()
            self._context.term()
            raise
        log.info("publishing events on %s (hwm %d)", parsed, hwm)
        if wait_for_subscriber_s is not None:
            self.wait_for_subscriber(wait_for_subscriber_s)

    @property
    def endpoint(self) -> str:
        """The bound address with the real port (``tcp://127.0.0.1:41234``) or the connected one."""
        return self._endpoint

    @property
    def published(self) -> int:
        """Messages accepted for delivery so far."""
        return self._published

    @property
    def send_errors(self) -> int:
        """Messages refused so far (a subscriber's queue was full, or the socket failed)."""
        return self._send_errors

    @property
    def subscriptions(self) -> int:
        """Distinct topic prefixes subscribed to right now (as of the last publish or wait)."""
        return self._subscriptions

    def publish(self, topic_name: str, payload: bytes) -> bool:
        """Queue one message without blocking; returns False (and counts it) when refused."""
        message = [topic_name.encode(), payload]
        with self._lock:
            try:
                self._socket.send_multipart(message, flags=zmq.NOBLOCK, copy=False)
            except zmq.ZMQError as error:
                self._send_errors += 1
                if error.errno != zmq.EAGAIN:
                    log.warning("publish on %s failed: %s", self._endpoint, error)
                return False
            self._published += 1
            self._read_subscriptions()
        return True

    def wait_for_subscriber(self, timeout_s: float = DEFAULT_WAIT_FOR_SUBSCRIBER_S) -> bool:
        """Wait up to `timeout_s` until some subscription is present; True when one is.

        A subscriber that subscribed before this returns receives every later message. Meant for
        start-up: it holds the socket lock in slices of `WAIT_SLICE_S`, which would delay
        concurrent publish() calls by as much.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                self._read_subscriptions()
                if self._subscriptions > 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._socket.poll(int(min(remaining, WAIT_SLICE_S) * 1000), zmq.POLLIN)
        log.warning(
            "no subscriber on %s after %.1f s; publishing anyway", self._endpoint, timeout_s
        )
        return False

    def _read_subscriptions(self) -> None:
        """Consume pending (un)subscription messages; the caller holds the lock."""
        while self._socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            message = self._socket.recv(zmq.NOBLOCK)
            if not message:
                continue
            self._subscriptions += 1 if message[0] == SUBSCRIBE_FLAG else -1
            log.debug("subscription change on %s: %r", self._endpoint, message)

    def close(self) -> None:
        """Close the socket; queued messages are delivered for up to ``linger_ms``."""
        with self._lock:
            if self._socket.closed:
                return
            self._socket.close()
            self._stop_auth()
            self._context.term()
        log.info(
            "closed %s: %d published, %d refused",
            self._endpoint,
            self._published,
            self._send_errors,
        )

    def _stop_auth(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _check_curve_options(
    endpoint: Endpoint,
    curve: CurveKeys | None,
    allow: Path | None,
    server_key: bytes | None,
) -> None:
    """Reject CURVE options that do not fit a publisher binding or connecting `endpoint`."""
    if curve is None and (allow is not None or server_key is not None):
        raise PublisherError(f"endpoint {endpoint}: CURVE options need the publisher's key pair")
    if curve is None:
        return
    if endpoint.bind and server_key is not None:
        raise PublisherError(
            f"endpoint {endpoint}: a server key is for connecting to a CURVE broker, not binding"
        )
    if not endpoint.bind and server_key is None:
        raise PublisherError(
            f"endpoint {endpoint}: connecting with CURVE needs the server's public key"
        )
    if not endpoint.bind and allow is not None:
        raise PublisherError(
            f"endpoint {endpoint}: allowed client keys apply when binding, not connecting"
        )
    if allow is not None and not allow.is_dir():
        raise PublisherError(f"CURVE allowed keys {allow}: expected a folder of *.key files")


def _set_curve_client(socket: zmq.Socket, keys: CurveKeys, server_key: bytes) -> None:
    """Make `socket` a CURVE client of the server whose public key is `server_key`."""
    if len(server_key) != CURVE_KEY_CHARS:
        raise PublisherError(
            f"CURVE server key: expected {CURVE_KEY_CHARS} Z85 characters, got {len(server_key)}"
        )
    socket.setsockopt(zmq.CURVE_SERVERKEY, server_key)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    socket.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)


class EventSubscriber:
    """Receives and decodes events from an `EventPublisher`.

    Args:
        endpoint: where to listen; bare addresses connect, ``@`` binds (then publishers connect
            with ``>``).
        topics: topic prefixes to subscribe to; ``tps/cam0/`` is one stream (keep the slash:
            ``tps/cam0`` would also match ``tps/cam01``).
        hwm: messages queued before the subscriber drops more; 0 means no limit.
        curve_server_key: the publisher's Z85 public key when the stream is encrypted.
        curve_keys: this subscriber's key pair (the publisher admits it when its public key is
            in the allowed folder); None makes a throw-away pair, enough when any client is
            admitted.

    Raises:
        PublisherError: malformed endpoint, address in use, CURVE unavailable, a malformed key.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        topics: tuple[str, ...] = ("tps/",),
        hwm: int = DEFAULT_HWM,
        curve_server_key: bytes | None = None,
        curve_keys: CurveKeys | None = None,
    ) -> None:
        parsed = parse_endpoint(endpoint, bind_by_default=False)
        if curve_keys is not None and curve_server_key is None:
            raise PublisherError(f"endpoint {endpoint}: a CURVE key pair needs the server key")
        if curve_server_key is not None:
            _require_curve()
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve_server_key is not None:
            try:
                _set_curve_client(
                    self._socket, curve_keys or CurveKeys.generate(), curve_server_key
                )
            except PublisherError:
                self.close()
                raise
        for prefix in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        try:
            self._endpoint = _open(self._socket, parsed)
        except PublisherError:
            self.close()
            raise

    @property
    def endpoint(self) -> str:
        """The connected address, or the bound one with the real port."""
        return self._endpoint

    def receive(self, timeout_s: float | None = None) -> tuple[str, Event] | None:
        """The next ``(topic, event)``, or None when nothing arrives within `timeout_s`.

        Raises:
            EventError: the message is not a valid ``[topic, payload]`` event (it is consumed).
        """
        timeout_ms = None if timeout_s is None else int(timeout_s * 1000)
        if not self._socket.poll(timeout_ms, zmq.POLLIN):
            return None
        frames = self._socket.recv_multipart()
        if len(frames) != 2:
            raise EventError(f"message: expected 2 frames [topic, payload], got {len(frames)}")
        topic_name = frames[0].decode(errors="replace")
        event = decode(frames[1])
        expected = topic(str(event.get("stream")), event["type"])
        if topic_name != expected:
            raise EventError(f"topic {topic_name!r}: expected {expected!r} for its payload")
        return topic_name, event

    def events(
        self,
        *,
        idle_timeout_s: float | None = None,
        limit: int | None = None,
        until_final: bool = False,
    ) -> Iterator[tuple[str, Event]]:
        """Yield ``(topic, event)`` until a stop condition; malformed messages are logged, skipped.

        Args:
            idle_timeout_s: stop when nothing arrives for this long; None waits forever.
            limit: stop after this many events.
            until_final: stop once every stream seen so far has sent a final status (``eos`` or
                ``stopped``); a stream that starts again after one counts as live again.
        """
        live: set[str] = set()
        count = 0
        while limit is None or count < limit:
            try:
                received = self.receive(idle_timeout_s)
            except EventError as error:
                log.warning("skipping a message on %s: %s", self._endpoint, error)
                continue
            if received is None:
                log.info("no event on %s for %.1f s; stopping", self._endpoint, idle_timeout_s)
                return
            yield received
            count += 1
            event = received[1]
            if event["type"] == "status" and event.get("state") in FINAL_STATES:
                live.discard(event["stream"])
                if until_final and not live:
                    return
            else:
                live.add(event["stream"])

    def close(self) -> None:
        """Close the socket; unread messages are discarded."""
        self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
