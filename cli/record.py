"""``run.py record ENDPOINT --out DIR``: turn an event stream into Kinetics-TPS prediction files.

How events become predictions is `pipeline.recorder` (see there). It records until every stream
seen has ended (``eos`` or ``stopped``), ``--timeout`` seconds pass without an event, or Ctrl-C;
then writes `tps.formats.PRED_VIDEO_FILE` and `PRED_PART_FILE`. Streams without a clip event have
no action and are left out, with a warning.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cli.subscribe import add_connection_arguments, curve_options
from pipeline.recorder import STATE_SOURCES, Recorder
from tps.formats import write_pred
from transport.zmq import EventSubscriber

log = logging.getLogger(__name__)

UNLIMITED_QUEUE = 0
"""ZeroMQ high-water mark 0: the recorder queues whatever arrives rather than drop it."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``record`` subcommand."""
    parser = subparsers.add_parser(
        "record",
        help="record events into Kinetics-TPS prediction files",
        description="Turn an event stream into Kinetics-TPS prediction files (see docs/EVENTS.md).",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="directory for the prediction files"
    )
    parser.add_argument(
        "--states",
        choices=STATE_SOURCES,
        default="clip",
        help="part states from the last clip decision (default) or as each frame carried them",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Record until every stream ended (or timeout, Ctrl-C), then write; 1 when nothing to write."""
    recorder = Recorder(args.states)
    received = 0
    with EventSubscriber(args.endpoint, hwm=UNLIMITED_QUEUE, **curve_options(args)) as subscriber:
        try:
            for _topic, event in subscriber.events(idle_timeout_s=args.timeout, until_final=True):
                recorder.add(event)
                received += 1
        except KeyboardInterrupt:
            log.info("interrupted after %d events; writing what was recorded", received)
    prediction = recorder.prediction()
    if not prediction.labels:
        print(
            f"error: no stream with a clip event among {received} events from {args.endpoint}",
            file=sys.stderr,
        )
        return 1
    write_pred(args.out, prediction)  # FormatError (unwritable directory) is a user error
    frames = sum(len(frames) for frames in prediction.parts.values())
    print(f"recorded {len(prediction.labels)} videos, {frames} annotated frames to {args.out}")
    return 0
