"""Overload: an input far faster than the parser, in live mode (drop, stay fresh) and offline (lose
nothing), with the whole real pipeline. Bounds are checked structurally, not by the clock: the
frames held by the pipeline at any moment, which bound both its memory and its latency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.graph import OFFLINE_QUEUE_FRAMES, STAGE_QUEUE_FRAMES
from pipeline.runner import Runner
from plugins.context import current_context
from tests.pipeline.test_runner import by_stream, make_config, run_with_subscriber

FAST_FPS = 400
"""Far above what the parser does on any CPU: most frames must be dropped in live mode."""
FRAMES = 60
STREAM = "fast"
STAGES = 5
"""Elements after the parser queue that hold a frame while working on it (person .. publish)."""
SAMPLE_S = 0.001


@contextmanager
def peak_in_flight(stream: str) -> Iterator[list[int]]:
    """Samples the frames of `stream` in flight (opened, not yet published) every millisecond."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_S):
            peak[0] = max(peak[0], current_context().table.in_flight(stream))  # the run's

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def counted(runner: Runner, counter: str) -> int:
    value = runner.metrics.registry.get_sample_value(counter, {"stream": STREAM})
    return int(value or 0)


def dropped(runner: Runner) -> int:
    return counted(runner, "tps_frames_dropped_total")


def fast_config(random_weights, tmp_path, mode: str, **extra):
    sources = [{"id": STREAM, "uri": f"synth://?seed=5&people=2&frames={FRAMES}"}]
    return make_config(
        random_weights, sources, tmp_path, mode=mode, video={"fps": FAST_FPS}, **extra
    )


def test_live_overload_drops_at_the_gate_counts_and_parses_fresh_frames(random_weights, tmp_path):
    config = fast_config(random_weights, tmp_path, "live", live={"max_in_flight": 1})
    with peak_in_flight(STREAM) as peak:
        runner, events = run_with_subscriber(config)
    frames = by_stream(events, STREAM, "frame")
    assert runner.frames_in[STREAM] == FRAMES
    processed = counted(runner, "tps_frames_processed_total")
    assert 0 < processed < FRAMES
    assert processed + dropped(runner) == FRAMES  # every frame is either parsed or counted
    # A live run does not wait for its subscriber, so the first events may go before it listens.
    assert 0 < len(frames) <= processed
    assert peak[0] == 1  # never more than one frame waiting or parsed: latency of one pass
    indices = [event["frame_index"] for event in frames]
    assert indices == sorted(set(indices))
    assert by_stream(events, STREAM, "status")[-1]["state"] == "eos"


def test_offline_overload_loses_nothing_and_holds_a_bounded_number_of_frames(
    random_weights, tmp_path
):
    config = fast_config(random_weights, tmp_path, "offline")
    with peak_in_flight(STREAM) as peak:
        runner, events = run_with_subscriber(config)
    frames = by_stream(events, STREAM, "frame")
    assert [event["frame_index"] for event in frames] == list(range(FRAMES))
    assert dropped(runner) == 0
    held = OFFLINE_QUEUE_FRAMES + (STAGES - 1) * STAGE_QUEUE_FRAMES["offline"] + STAGES
    assert 1 < peak[0] <= held  # back-pressure: decoding waits for the parser
