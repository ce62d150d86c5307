"""The benchmark suite behind ``python run.py bench``: every figure measured side by side, one run.

Sections (``--only`` picks some):

- ``models``: stage-only throughput of each tiny network, torch vs ONNX Runtime, batch 1/4/8
  (`bench.models_bench`);
- ``decode``: our sources against a bare gst-launch-1.0 line on the same files (`bench.decode`);
- ``pipeline``: offline end-to-end throughput for 1, 2 and 4 streams, the glue overhead
  (end-to-end time over the stage-only time of the same frames, from the naive loop), and the
  naive baseline on 2 streams (`bench.pipeline`, `bench.naive`);
- ``latency``: live mode at 25 fps per stream, 1 and 4 synthetic streams, without the in-flight
  gate and with it at 1 and 2 frames: end-to-end latency p50/p99 and frames dropped;
- ``publish``: frame events per second, our publisher vs raw pyzmq (`bench.publish`).

The machines are shared and noisy, so runs are repeated (``--quick``: once), interleaved, and
medians reported; the load average and core count go into the JSON. `run_suite` writes
``bench.json`` and `bench.report.update_doc` rewrites the generated part of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import models_bench
from bench.common import (
    AVERAGE_CLIPS,
    CLIP_HOP,
    MAX_PERSONS,
    PERSON_SCORE_THRESHOLD,
    TORCH_THREADS,
    Weights,
    environment,
    median,
    parser_settings,
    resolve_weights,
    shared_clips,
    synthetic_videos,
)
from bench.decode import bench_decode
from bench.naive import STAGES, NaiveTimes, run_naive
from bench.pipeline import PipelineRun, pipeline_config, run_pipeline
from bench.publish import bench_publish
from bench.report import targets

log = logging.getLogger(__name__)

SECTIONS = ("models", "decode", "pipeline", "latency", "publish")
STREAM_COUNTS = (1, 2, 4)
NAIVE_STREAMS = 2
LATENCY_STREAMS = (1, 4)
LIVE_GATES = (0, 1, 2)
"""``live.max_in_flight`` values compared (0: no gate, the leaky queue alone drops)."""
LIVE_FPS = 25
PIPELINE_SIZE = (320, 240)
DECODE_SIZE = (640, 480)
PERCENTILES = (50, 99)
MS_PER_S = 1000.0
MIB = 1024.0 * 1024.0
QUICK_MODELS = ("yolof_tiny", "hrnet_tiny", "ir_csn_tiny")
QUICK_REQUESTS = 8


class SuiteError(ValueError):
    """Bad suite arguments (an unknown section)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much each section does: `quick` is a smoke run of about 2 minutes on 2 cores."""

    quick: bool
    repeats: int
    pipeline_frames: int
    live_seconds: float
    publish_messages: int
    decode_clips: tuple[str, ...] | None
    decode_frames: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 1, 16, 2.0, 2000, ("pose_demo.mp4", "structuralize_demo.mp4"), 50)
        return cls(False, 3, 48, 8.0, 10000, None, 150)


@dataclasses.dataclass
class Context:
    """What the sections share in one run."""

    plan: Plan
    weights: Weights
    workdir: Path


def _models(context: Context) -> dict[str, Any]:
    argv = ["--out", str(context.workdir / "models_bench.json"), "--threads", str(TORCH_THREADS)]
    if context.plan.quick:
        argv += ["--quick", "--models", *QUICK_MODELS, "--requests", str(QUICK_REQUESTS)]
    models_bench.main(argv)
    torch.set_num_threads(TORCH_THREADS)
    report = json.loads((context.workdir / "models_bench.json").read_text())
    return {key: report[key] for key in ("settings", "throughput", "batching", "wall_s")}


def _decode(context: Context) -> dict[str, Any]:
    videos = shared_clips(context.plan.decode_clips)
    videos += synthetic_videos(context.workdir, 1, context.plan.decode_frames, DECODE_SIZE)
    rows = [bench_decode(video, context.plan.repeats).as_dict() for video in videos]
    return {"repeats": context.plan.repeats, "rows": rows}


def _pipeline(context: Context) -> dict[str, Any]:
    plan = context.plan
    settings = parser_settings(context.weights)
    videos = synthetic_videos(
        context.workdir, max(STREAM_COUNTS), plan.pipeline_frames, PIPELINE_SIZE
    )
    naive_runs: list[list[NaiveTimes]] = []
    pipeline_runs: dict[int, list[PipelineRun]] = {count: [] for count in STREAM_COUNTS}
    for _ in range(plan.repeats):
        naive_runs.append([run_naive(settings, [video]) for video in videos])
        for count in STREAM_COUNTS:
            uris = [str(video) for video in videos[:count]]
            pipeline_runs[count].append(run_pipeline(pipeline_config(context.weights, uris)))
    rows = []
    for count in STREAM_COUNTS:
        runs = pipeline_runs[count]
        model_s = median(sum(t.model_s for t in per_video[:count]) for per_video in naive_runs)
        span_s = median(run.span_s for run in runs)
        frames = runs[0].total_frames
        rows.append(
            {
                "streams": count,
                "frames": frames,
                "span_s": span_s,
                "frames_per_s": frames / span_s,
                "stage_only_s": model_s,
                "glue_overhead": span_s / model_s - 1.0,
                "element_stage_s": {
                    element: median(run.stage_s[element] for run in runs)
                    for element in runs[0].stage_s
                },
                "runner_wall_s": median(run.wall_s for run in runs),
                "dropped": max(run.dropped for run in runs),
                "peak_rss_mib": median(run.peak_rss for run in runs) / MIB,
            }
        )
    naive_wall_s = median(
        sum(t.wall_s for t in per_video[:NAIVE_STREAMS]) for per_video in naive_runs
    )
    naive_frames = sum(t.frames for t in naive_runs[0][:NAIVE_STREAMS])
    ours = next(row for row in rows if row["streams"] == NAIVE_STREAMS)
    all_frames = [t for per_video in naive_runs for t in per_video]
    per_frame = [s for t in all_frames for s in t.per_frame_model_s]
    total_frames = sum(t.frames for t in all_frames)
    return {
        "repeats": plan.repeats,
        "frames_per_stream": plan.pipeline_frames,
        "frame_size": list(PIPELINE_SIZE),
        "rows": rows,
        "naive": {
            "streams": NAIVE_STREAMS,
            "frames": naive_frames,
            "wall_s": naive_wall_s,
            "frames_per_s": naive_frames / naive_wall_s,
            "pipeline_frames_per_s": ours["frames_per_s"],
            "pipeline_over_naive": ours["frames_per_s"] / (naive_frames / naive_wall_s),
            "stage_ms_per_frame": {
                stage: MS_PER_S * sum(t.stage_s[stage] for t in all_frames) / total_frames
                for stage in STAGES
            },
            "model_ms_per_frame_median": MS_PER_S * median(per_frame),
            "final_decision_s_per_video": median(t.final_clip_s for t in all_frames),
        },
    }


def _latency(context: Context) -> dict[str, Any]:
    plan = context.plan
    settings = parser_settings(context.weights)
    frames = round(plan.live_seconds * LIVE_FPS)
    probe = synthetic_videos(context.workdir, 1, plan.pipeline_frames, PIPELINE_SIZE)
    per_frame_s = median(run_naive(settings, probe).per_frame_model_s)
    video = {"width": PIPELINE_SIZE[0], "height": PIPELINE_SIZE[1], "fps": LIVE_FPS}
    runs: dict[tuple[int, int], list[PipelineRun]] = {
        (count, gate): [] for count in LATENCY_STREAMS for gate in LIVE_GATES
    }
    for _ in range(plan.repeats):  # interleaved, so that load changes hit every setting alike
        for count, gate in runs:
            uris = [f"synth://?seed={seed}&people=2&frames={frames}" for seed in range(count)]
            config = pipeline_config(
                context.weights, uris, "live", video, live={"max_in_flight": gate}
            )
            runs[count, gate].append(run_pipeline(config))
    rows = []
    for (count, gate), setting_runs in runs.items():
        latencies = [value for run in setting_runs for value in run.latencies_s]
        p50, p99 = (float(v) * MS_PER_S for v in np.percentile(latencies, PERCENTILES))
        offered = frames * count
        dropped = median(run.dropped for run in setting_runs)
        rows.append(
            {
                "streams": count,
                "max_in_flight": gate,
                "fps_per_stream": LIVE_FPS,
                "frames_offered": offered,
                "frames_published": median(run.total_frames for run in setting_runs),
                "frames_dropped": dropped,
                "dropped_fraction": dropped / offered,
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
                "p99_over_model_time": p99 / (per_frame_s * MS_PER_S),
                "peak_rss_mib": median(run.peak_rss for run in setting_runs) / MIB,
            }
        )
    return {
        "repeats": plan.repeats,
        "seconds_per_stream": plan.live_seconds,
        "latency_definition": "from tpsstamp (after decoding and pacing) to the frame event "
        "being published, every frame, from the runner's metrics hook (Hooks.frame_done)",
        "model_ms_per_frame_median": per_frame_s * MS_PER_S,
        "rows": rows,
    }


def _publish(context: Context) -> dict[str, Any]:
    return bench_publish(context.plan.publish_messages, max(context.plan.repeats, 2))


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "models": _models,
    "decode": _decode,
    "pipeline": _pipeline,
    "latency": _latency,
    "publish": _publish,
}


def parse_only(text: str | None) -> tuple[str, ...]:
    """``"publish,decode"`` -> the sections in suite order; None or empty -> all.

    Raises:
        SuiteError: naming the unknown sections and the known ones.
    """
    if not text:
        return SECTIONS
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise SuiteError(f"--only: unknown sections {unknown}; expected some of {SECTIONS}")
    return tuple(name for name in SECTIONS if name in wanted)


def run_suite(
    out: Path, quick: bool, sections: Sequence[str] = SECTIONS, workdir: Path | None = None
) -> dict[str, Any]:
    """Run `sections`, write ``out/bench.json`` and return the report.

    Args:
        out: output folder (created).
        quick: the smoke-sized plan (one repeat, few frames).
        sections: section names, a subset of `SECTIONS`.
        workdir: where rendered videos and random weights are kept between runs (default
            ``out/work``).
    """
    started = time.perf_counter()
    plan = Plan.make(quick)
    out.mkdir(parents=True, exist_ok=True)
    workdir = workdir or out / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    report: dict[str, Any] = {"benchmark": "suite", "quick": quick, "environment": environment()}
    try:
        weights = resolve_weights(workdir)
        report["weights"] = {
            "source": weights.source,
            "files": [str(path) for path in (weights.person, weights.pose, weights.parts,
                                              *weights.clip)],
        }  # fmt: skip
        report["settings"] = {
            "person_score_threshold": PERSON_SCORE_THRESHOLD,
            "max_persons": MAX_PERSONS,
            "fixed_work_note": "score threshold 0 and a fixed max_persons: every frame parses "
            "the same number of persons, whatever the weights",
            "clip_hop": CLIP_HOP,
            "average_clips": AVERAGE_CLIPS,
            "engine": "torch (cpu)",
            "torch_threads": TORCH_THREADS,
            "plan": dataclasses.asdict(plan),
        }
        report["sections"] = {}
        context = Context(plan, weights, workdir)
        for name in sections:
            log.info("bench: %s", name)
            section_started = time.perf_counter()
            result = RUNNERS[name](context)
            result["section_wall_s"] = time.perf_counter() - section_started
            report["sections"][name] = result
        report["targets"] = targets(report["sections"])
    finally:
        torch.set_num_threads(previous_threads)
    report["environment"]["load_average_1m_5m_15m_at_end"] = list(os.getloadavg())
    report["wall_s"] = time.perf_counter() - started
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
