"""``run.py subscribe ENDPOINT``: print the event stream as JSON lines.

Each line is ``{"topic": "tps/cam0/frame", "event": {...}}`` with the event exactly as decoded
(docs/EVENTS.md). It stops after ``--count`` events, after ``--timeout`` seconds without an event,
or with ``--until-eos`` once every stream it has seen has ended (``eos`` or ``stopped``).
"""

from __future__ import annotations

import argparse
import json

from plugins.publisher import EventSubscriber


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """ENDPOINT, --timeout and --curve-server-key, shared by every command that subscribes."""
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
        default=None,
        metavar="Z85",
        help="the publisher's CurveZMQ public key, when the stream is encrypted",
    )


def curve_server_key(args: argparse.Namespace) -> bytes | None:
    """The ``--curve-server-key`` argument as bytes, or None."""
    return None if args.curve_server_key is None else args.curve_server_key.encode()


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
    with EventSubscriber(
        args.endpoint, topics=topics, curve_server_key=curve_server_key(args)
    ) as subscriber:
        for topic_name, event in subscriber.events(
            idle_timeout_s=args.timeout, limit=args.count, until_final=args.until_eos
        ):
            print(json.dumps({"topic": topic_name, "event": event}), flush=True)
    return 0
