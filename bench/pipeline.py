"""Our pipeline, timed: `pipeline.runner.Runner` on a `PipelineConfig` built in code.

Metrics serving is off, no annotated video or prediction files are written, and events go to
``tcp://127.0.0.1:*`` without waiting for a subscriber. The runner counts into
`RecordingMetrics`, which keeps every end-to-end latency (the histogram alone only has coarse
buckets) and otherwise behaves as `Metrics` does.

What is measured:
- `PipelineRun.span_s`: from the first stream reaching PLAYING to the last frame event of the
  last stream (network loading before and the end-of-stream decisions after are excluded; the
  naive baseline excludes the same);
- end-to-end latency: from ``tpsstamp`` (after decoding, and pacing in live mode) to the frame's
  event being published, per frame (`Hooks.frame_done`);
- stage seconds per element from the ``tps_stage_seconds`` histogram sums (batcher waits included).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import PeakMemory, Weights, parser_data
from pipeline.config import validate
from pipeline.metrics import NAMESPACE, Metrics
from pipeline.runner import Runner
from pipeline.settings import PipelineConfig

ELEMENTS = ("tpsstamp", "tpsperson", "tpspose", "tpsparts", "tpsclip", "tpspublish")
ANY_PORT_ENDPOINT = "tcp://127.0.0.1:*"


class BenchError(RuntimeError):
    """A benchmark run did not do the work it was set (a stream failed or parsed no frame)."""


class RecordingMetrics(Metrics):
    """`Metrics` that also keeps every frame's end-to-end latency, per stream."""

    def __init__(self, streams: Sequence[str]) -> None:
        super().__init__(streams)
        self.latencies_s: dict[str, list[float]] = {stream: [] for stream in streams}

    def frame_processed(self, stream: str, latency_s: float | None = None) -> None:
        super().frame_processed(stream, latency_s)
        if latency_s is not None:
            self.latencies_s[stream].append(latency_s)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The value of one series (0 when absent), e.g. ``("stage_seconds_sum", {...})``."""
        value = self.registry.get_sample_value(f"{NAMESPACE}_{name}", labels or {})
        return 0.0 if value is None else float(value)


@dataclass
class PipelineRun:
    """What one timed run of the pipeline did.

    Attributes:
        streams: stream ids.
        frames: frames published per stream.
        span_s: first stream PLAYING -> last frame published (seconds).
        wall_s: the whole `Runner.run()`, loading and end-of-stream decisions included.
        stage_s: seconds per element (sum over every call, all streams).
        latencies_s: end-to-end latency of every frame, all streams.
        dropped: frames dropped by the live gate and queues, all streams.
        states: each stream's final state.
        peak_rss: the process's highest resident memory during the run (bytes, sampled).
    """

    streams: list[str]
    frames: dict[str, int]
    span_s: float
    wall_s: float
    stage_s: dict[str, float]
    latencies_s: list[float] = field(default_factory=list)
    dropped: int = 0
    states: dict[str, str] = field(default_factory=dict)
    peak_rss: int = 0

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())

    @property
    def frames_per_s(self) -> float:
        return self.total_frames / self.span_s


def pipeline_config(
    weights: Weights,
    uris: Sequence[str],
    mode: str = "offline",
    video: dict[str, Any] | None = None,
    live: dict[str, Any] | None = None,
) -> PipelineConfig:
    """The benchmark's pipeline: `uris` as streams s0.., fixed-work parser, no outputs on disk."""
    data = {
        "mode": mode,
        "sources": [{"id": f"s{index}", "uri": uri} for index, uri in enumerate(uris)],
        "video": video or {},
        "live": live or {},
        "parser": parser_data(weights),
        "publish": {"endpoint": ANY_PORT_ENDPOINT, "wait_for_subscriber_s": 0},
        "metrics": {"enabled": False},
        "output": {"dir": None, "annotated_video": False, "predictions": False},
    }
    return validate(PipelineConfig, data, "bench pipeline")


def run_pipeline(
    config: PipelineConfig, make_runner: Callable[[PipelineConfig, Metrics], Runner] = Runner
) -> PipelineRun:
    """Run `config` to its end and collect its figures (`make_runner` may add observers).

    Raises:
        BenchError: a stream ended in error or published no frame.
    """
    metrics = RecordingMetrics(config.stream_ids())
    runner = make_runner(config, metrics)
    started = time.perf_counter()
    with PeakMemory() as memory:
        report = runner.run()
    wall_s = time.perf_counter() - started
    frames = {stream: report.progress[stream].frames for stream in runner.streams}
    if report.failed or not all(frames.values()):
        raise BenchError(f"pipeline run: states {report.states}, frames {frames}")
    first_playing = min(report.progress[stream].started for stream in runner.streams)
    last_frame = max(metrics.last_frame_time(stream) or 0.0 for stream in runner.streams)
    return PipelineRun(
        streams=list(runner.streams),
        frames=frames,
        span_s=last_frame - first_playing,
        wall_s=wall_s,
        stage_s={
            element: metrics.sample("stage_seconds_sum", {"stage": element}) for element in ELEMENTS
        },
        latencies_s=[value for values in metrics.latencies_s.values() for value in values],
        dropped=int(
            sum(
                metrics.sample("frames_dropped_total", {"stream": stream})
                for stream in runner.streams
            )
        ),
        states=dict(report.states),
        peak_rss=memory.peak,
    )
