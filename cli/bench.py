"""``run.py bench [--quick] [--out DIR] [--only a,b]``: the benchmark suite, JSON and tables.

Writes ``DIR/bench.json`` (default out/bench/) and, when every section ran, rewrites the generated
tables of docs/PERFORMANCE.md. Sections: models, decode, pipeline, latency, publish (see
`bench.suite`). ``--quick`` takes about 2 minutes on 2 cores, the full run about 10.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.common import REPO
from bench.report import update_doc
from bench.suite import SECTIONS, parse_only, run_suite

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("out/bench")
DEFAULT_DOC = REPO / "docs" / "PERFORMANCE.md"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark suite: throughput, latency, overheads", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="smoke-sized run (~2 minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for bench.json")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="document to update")
    parser.add_argument("--no-doc", action="store_true", help="leave the document alone")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    sections = parse_only(args.only)
    report = run_suite(args.out, args.quick, sections)
    print(f"wrote {args.out / 'bench.json'} ({report['wall_s']:.0f} s)")
    for target in report["targets"]:
        measured = target["measured"]
        shown = "not run" if measured is None else f"{measured:.3g}"
        verdict = {True: "met", False: "NOT met", None: "-"}[target["met"]]
        print(f"  {target['name']}: {shown} (want {target['target']}): {verdict}")
    if args.no_doc:
        return 0
    if tuple(sections) != SECTIONS:
        log.info("only some sections ran: %s left unchanged", args.doc)
        return 0
    update_doc(args.doc, report)
    print(f"updated {args.doc}")
    return 0
