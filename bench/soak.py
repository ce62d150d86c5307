"""Soak: a live run of several streams for minutes, with an RTSP server killed every 20 s.

    python bench/soak.py --streams 4 --minutes 2 [--out soak.json]

Streams: ``--streams - 1`` endless synthetic sources and one RTSP source served by a separate
process (tests/pipeline/rtsp_serve.py) that is killed and started again every
``--restart-every`` seconds. Live mode, random tiny weights unless the shipped ones exist
(`bench.common.resolve_weights`). A subscriber counts frame events per stream.

Reports JSON (stdout, and ``--out``): resident memory (VmRSS of this process at start, after
warm-up and at the end, the growth from warm-up to the end and over the second half, the peak,
and a timeline every 30 s with Python objects, side-table records and threads, which tells a leak
from memory that levels off), reconnects forced (server kills)
and seen (``reconnecting`` statuses), frames in / processed / dropped per stream from the runner's
`Metrics`, and events lost: frames processed but never received by the subscriber (must be 0).
"""

from __future__ import annotations

import argparse
import gc
import logging
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO,
    emit,
    environment,
    parser_data,
    process_status,
    resolve_weights,
)
from pipeline.config import validate  # noqa: E402
from pipeline.metrics import NAMESPACE  # noqa: E402
from pipeline.runner import Runner  # noqa: E402
from pipeline.settings import PipelineConfig  # noqa: E402
from plugins.frames import FrameTable  # noqa: E402
from transport.zmq import EventSubscriber  # noqa: E402

log = logging.getLogger("bench.soak")

RTSP_SERVER = REPO / "tests" / "pipeline" / "rtsp_serve.py"
RTSP_STREAM = "rtsp"
LOOPBACK = "127.0.0.1"
VIDEO_SIZE = (160, 120)
VIDEO_FPS = 10
SERVER_READY_TIMEOUT_S = 30.0
SERVER_KILL_TIMEOUT_S = 10.0
WARM_UP_S = 20.0
"""Memory growth is measured from this long after the start (networks and buffers settled)."""
SAMPLE_EVERY_S = 30.0
"""The memory timeline's step: it shows whether growth levels off or goes on."""
DRAIN_IDLE_S = 30.0
"""After the stop, the subscriber stops once nothing arrived for this long."""
STOP_TIMEOUT_S = 60.0
RECONNECT = {"initial_delay_s": 0.5, "max_delay_s": 2.0}


def rss_bytes() -> int:
    """Resident memory of this process."""
    return process_status("VmRSS")


def memory_sample(started: float, table: FrameTable) -> dict[str, float]:
    """Where memory stands now: resident bytes, Python objects, records in the run's side table,
    threads."""
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss": rss_bytes(),
        "python_objects": len(gc.get_objects()),
        "frame_records": len(table),
        "threads": process_status("Threads"),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class RtspServer:
    """The RTSP server process, killed and started again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RTSP_SERVER), str(self.port)], stdout=subprocess.PIPE, text=True
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"RTSP server on port {self.port}: expected 'ready', got {line!r}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(SERVER_KILL_TIMEOUT_S)


def soak_config(streams: int, weights_dir: Path, rtsp_port: int, endpoint: str) -> PipelineConfig:
    """Live mode: `streams - 1` endless synthetic sources and the RTSP one."""
    width, height = VIDEO_SIZE
    sources: list[dict[str, Any]] = [
        {"id": f"synth{index}", "uri": f"synth://?seed={index}&people=2"}
        for index in range(streams - 1)
    ]
    sources.append({"id": RTSP_STREAM, "uri": f"rtsp://{LOOPBACK}:{rtsp_port}/live?transport=tcp"})
    data = {
        "mode": "live",
        "sources": sources,
        "video": {"width": width, "height": height, "fps": VIDEO_FPS},
        "parser": parser_data(resolve_weights(weights_dir)),
        "reconnect": RECONNECT,
        "publish": {"endpoint": endpoint},
        "metrics": {"enabled": False},
        "output": {"dir": None},
    }
    return validate(PipelineConfig, data, "soak")


def soak(streams: int, minutes: float, restart_every_s: float, workdir: Path) -> dict[str, Any]:
    """Run the soak; returns the report (see the module docstring)."""
    rss_start = rss_bytes()
    server = RtspServer(free_port())
    endpoint = f"tcp://{LOOPBACK}:{free_port()}"
    config = soak_config(streams, workdir, server.port, endpoint)
    received: Counter[str] = Counter()
    reconnects_seen: Counter[str] = Counter()
    subscriber = EventSubscriber(endpoint, hwm=0)  # connects now; the run binds later

    def count() -> None:
        for _topic, event in subscriber.events(idle_timeout_s=None, until_final=True):
            if event["type"] == "frame":
                received[event["stream"]] += 1
            elif event["type"] == "status" and event["state"] == "reconnecting":
                reconnects_seen[event["stream"]] += 1

    runner = Runner(config)
    counter = threading.Thread(target=count, name="soak-subscriber", daemon=True)
    counter.start()
    server.start()
    run = threading.Thread(target=runner.run, name="soak-runner", daemon=True)
    started = time.monotonic()
    run.start()
    rss_warm = None
    forced = 0
    deadline = started + minutes * 60
    next_restart = started + restart_every_s
    timeline = [memory_sample(started, runner.context.table)]
    try:
        while time.monotonic() < deadline and run.is_alive():
            now = time.monotonic()
            if rss_warm is None and now - started >= WARM_UP_S:
                rss_warm = rss_bytes()
            if now - started >= timeline[-1]["t_s"] + SAMPLE_EVERY_S:
                timeline.append(memory_sample(started, runner.context.table))
            if now >= next_restart:
                server.kill()
                server.start()
                forced += 1
                next_restart = now + restart_every_s
                log.info("RTSP server killed and restarted (%d times)", forced)
            time.sleep(min(1.0, max(0.0, deadline - now)))
    finally:
        runner.stop()
        run.join(STOP_TIMEOUT_S)
        server.kill()
    wall_s = time.monotonic() - started
    counter.join(DRAIN_IDLE_S)
    subscriber.close()
    rss_end = rss_bytes()
    rss_warm = rss_end if rss_warm is None else rss_warm
    timeline.append(memory_sample(started, runner.context.table))
    halfway = next(sample for sample in timeline if sample["t_s"] >= wall_s / 2)
    registry = runner.metrics.registry

    def sample(name: str, stream: str) -> int:
        value = registry.get_sample_value(f"{NAMESPACE}_{name}", {"stream": stream})
        return int(value or 0)

    per_stream = {}
    for stream in config.stream_ids():
        processed = sample("frames_processed_total", stream)
        per_stream[stream] = {
            "frames_in": sample("frames_in_total", stream),
            "frames_processed": processed,
            "frames_dropped": sample("frames_dropped_total", stream),
            "frame_events_received": received[stream],
            "events_lost": processed - received[stream],
            "reconnects_metric": sample("source_reconnects_total", stream),
            "final_state": runner.states[stream],
        }
    send_errors = registry.get_sample_value(f"{NAMESPACE}_event_send_errors_total") or 0
    return {
        "streams": streams,
        "minutes": minutes,
        "wall_s": round(wall_s, 1),
        "restart_every_s": restart_every_s,
        "runner_ended_cleanly": not run.is_alive(),
        "subscriber_drained": not counter.is_alive(),
        "memory_bytes": {
            "rss_start": rss_start,
            "rss_after_warm_up": rss_warm,
            "rss_end": rss_end,
            "growth_after_warm_up": rss_end - rss_warm,
            "growth_second_half": rss_end - halfway["rss"],
            "rss_peak": process_status("VmHWM"),
            "timeline": timeline,
        },
        "reconnects": {
            "forced": forced,
            "seen": reconnects_seen[RTSP_STREAM],
            "seen_other_streams": sum(reconnects_seen.values()) - reconnects_seen[RTSP_STREAM],
        },
        "per_stream": per_stream,
        "events_lost": sum(entry["events_lost"] for entry in per_stream.values()),
        "event_send_errors": int(send_errors),
        "environment": environment(),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, soak, print (and write) the JSON; 1 when events were lost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=4, help="streams, one of them RTSP (>= 2)")
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument("--restart-every", type=float, default=20.0, metavar="S",
                        help="kill and restart the RTSP server every S seconds")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--workdir", type=Path, help="where random weights go (default: temp)")
    args = parser.parse_args(argv)
    if args.streams < 2:
        parser.error(f"--streams: expected at least 2 (one RTSP), got {args.streams}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with tempfile.TemporaryDirectory() as temp:
        workdir = args.workdir or Path(temp)
        report = soak(args.streams, args.minutes, args.restart_every, workdir)
    emit(report, args.out, indent=2)
    return 1 if report["events_lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
