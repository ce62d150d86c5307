"""``run.py subscribe ENDPOINT``: print the event stream as JSON lines.

Each line is ``{"topic": "tps/cam0/frame", "event": {...}}`` with the event exactly as decoded
(docs/EVENTS.md). It stops after ``--count`` events, after ``--timeout`` seconds without an event,
or with ``--until-eos`` once every stream it has seen has ended (``eos`` or ``stopped``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from transport.zmq import CurveKeys, EventSubscriber, load_public_key


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """ENDPOINT, --timeout and the CURVE key files, shared by every command that subscribes."""
    parser.add_argument(
        "endpoint",
        metavar="ENDPOINT",
        help="publisher address, e.g. tcp://127.0.0.1:5555 (prefix @ to bind instead)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds without an event (default: wait forever)",
    )
    parser.add_argument(
        "--curve-server-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="the publisher's public certificate (NAME.key from run.py keys), when the stream "
        "is encrypted",
    )
    parser.add_argument(
        "--curve-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="this subscriber's secret certificate (NAME.key_secret), when the publisher admits "
        "only known keys",
    )


def curve_options(args: argparse.Namespace) -> dict[str, Any]:
    """`EventSubscriber` keyword arguments from the CURVE key files (read now).

    Raises:
        PublisherError: a certificate is missing or of the wrong kind, or a client key without
            the server's.
    """
    server_key = None if args.curve_server_key is None else load_public_key(args.curve_server_key)
    keys = None if args.curve_key is None else CurveKeys.from_certificate(args.curve_key)
    return {"curve_server_key": server_key, "curve_keys": keys}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``subscribe`` subcommand."""
    parser = subparsers.add_parser(
        "subscribe",
        help="print events as JSON lines",
        description="Print the event stream as JSON lines (see docs/EVENTS.md).",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--topic",
        action="append",
        default=None,
        metavar="PREFIX",
        help="topic prefix to receive, repeatable, e.g. tps/cam0/ (default: tps/)",
    )
    parser.add_argument("--count", type=int, default=None, metavar="N", help="stop after N events")
    parser.add_argument(
        "--until-eos",
        action="store_true",
        help="stop once every stream seen has sent its final status (eos or stopped)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print events until a stop condition; returns 0."""
    topics = tuple(args.topic) if args.topic else ("tps/",)
    with EventSubscriber(args.endpoint, topics=topics, **curve_options(args)) as subscriber:
        for topic_name, event in subscriber.events(
            idle_timeout_s=args.timeout, limit=args.count, until_final=args.until_eos
        ):
            print(json.dumps({"topic": topic_name, "event": event}), flush=True)
    return 0
