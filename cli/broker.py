"""``run.py broker``: forward every worker's events to every subscriber (XSUB/XPUB proxy).

    python run.py broker --frontend 'tcp://*:5559' --backend 'tcp://*:5560' \\
        --metrics 0.0.0.0:9465 [--curve-secret broker.key_secret --curve-allow clients/]

Workers publish with ``--publish '>tcp://BROKER:5559'``; subscribers connect to
``tcp://BROKER:5560``. Runs until SIGINT or SIGTERM. Exit codes: 0 stopped on request, 1 the proxy
ended by itself, 2 bad input (endpoint in use, unreadable keys).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pipeline.broker import (
    DEFAULT_BACKEND,
    DEFAULT_FRONTEND,
    DEFAULT_HWM,
    Broker,
    BrokerCurve,
    BrokerError,
)
from pipeline.metrics import MetricsServer, parse_address

log = logging.getLogger(__name__)

WATCH_S = 0.5
"""How often the main thread checks that the proxy still runs while waiting for a signal."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "broker", help="forward events from many workers to many subscribers", description=__doc__
    )
    parser.add_argument("--frontend", default=DEFAULT_FRONTEND, help="bind for workers")
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help="bind for subscribers")
    parser.add_argument(
        "--hwm", type=int, default=DEFAULT_HWM, help="messages queued per peer (0: unlimited)"
    )
    parser.add_argument("--metrics", metavar="HOST:PORT", help="serve /metrics and /healthz")
    parser.add_argument(
        "--curve-secret", type=Path, metavar="FILE", help="the broker's secret certificate"
    )
    parser.add_argument(
        "--curve-allow",
        type=Path,
        metavar="DIR",
        help="client certificates to admit (any if unset)",
    )
    parser.set_defaults(handler=handle)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (main thread only); the previous handlers come back after."""

    def ask_stop(signum: int, _frame: object) -> None:
        log.info("received %s; stopping the broker", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, ask_stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def handle(args: argparse.Namespace) -> int:
    if args.curve_allow is not None and args.curve_secret is None:
        raise BrokerError("--curve-allow needs --curve-secret (the broker's own keys)")
    if args.hwm < 0:
        raise BrokerError(f"--hwm: expected >= 0, got {args.hwm}")
    curve = (
        BrokerCurve.from_files(args.curve_secret, args.curve_allow)
        if args.curve_secret is not None
        else None
    )
    stop = threading.Event()
    with ExitStack() as stack:
        broker = Broker(args.frontend, args.backend, hwm=args.hwm, curve=curve)
        stack.callback(broker.stop)
        if args.metrics:
            host, port = parse_address(args.metrics)
            # BrokerMetrics has the render() and health() that MetricsServer calls, not its type
            server = MetricsServer(broker.metrics, host, port)  # type: ignore[arg-type]
            stack.enter_context(server)
            log.info("broker metrics on %s/metrics", server.url)
        stack.enter_context(_stop_on_signals(stop))
        broker.start()
        while not stop.wait(WATCH_S):
            if not broker.running:
                log.error("the broker's proxy ended by itself")
                return 1
    return 0
