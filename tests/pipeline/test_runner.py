"""The whole pipeline with real parts: GStreamer, our elements, tiny networks, ZeroMQ, files."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from parsing.events import validate
from pipeline.config import validate as validate_config
from pipeline.runner import Runner
from pipeline.settings import PipelineConfig
from plugins.publisher import EventSubscriber
from tps.formats import read_pred

SUBSCRIBE_TIMEOUT_S = 120.0


def free_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def make_config(
    weights: dict[str, Path], sources: list[dict], out: Path, **extra
) -> PipelineConfig:
    data = {
        "sources": sources,
        "parser": {
            "person": {"weights": weights["person"], "score_threshold": 0.0, "max_persons": 2},
            "pose": {"weights": weights["pose"]},
            "parts": {"weights": weights["parts"]},
            "clip": {"networks": [{"weights": weights["csn"]}], "hop": 4, "average_clips": 3},
        },
        "publish": {"endpoint": free_endpoint(), "wait_for_subscriber_s": 10.0},
        "metrics": {"enabled": False},
        "output": {"dir": out},
        **extra,
    }
    return validate_config(PipelineConfig, data, "test")


def run_with_subscriber(config: PipelineConfig) -> tuple[Runner, list[tuple[str, dict]]]:
    """Run the pipeline while a real ZeroMQ subscriber, connected first, collects every event."""
    events: list[tuple[str, dict]] = []
    subscriber = EventSubscriber(config.publish.endpoint)
    done = threading.Event()

    def collect() -> None:
        for received in subscriber.events(idle_timeout_s=SUBSCRIBE_TIMEOUT_S, until_final=True):
            events.append(received)
        done.set()

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    runner = Runner(config)
    report = runner.run()
    assert done.wait(SUBSCRIBE_TIMEOUT_S), "the subscriber never saw every stream end"
    subscriber.close()
    runner.report = report
    return runner, events


def by_stream(events: list[tuple[str, dict]], stream: str, kind: str) -> list[dict]:
    return [event for _, event in events if event["stream"] == stream and event["type"] == kind]


@pytest.fixture(scope="module")
def two_streams(random_weights, shared_media, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    sources = [
        {"id": "clip", "uri": str(shared_media / "pose_demo.mp4")},
        {"id": "synthetic", "uri": "synth://?seed=3&people=2&frames=12"},
    ]
    return out, *run_with_subscriber(make_config(random_weights, sources, out))


def test_every_frame_gets_one_valid_event_in_order(two_streams):
    _, runner, events = two_streams
    for _, event in events:
        validate(event)
    for stream, frames in (("clip", 5), ("synthetic", 12)):
        frame_events = by_stream(events, stream, "frame")
        assert [e["frame_index"] for e in frame_events] == list(range(frames))
        assert [e["seq"] for e in frame_events] == list(range(frames))
        assert all(e["stream"] == stream for e in frame_events)
    assert runner.report.states == {"clip": "eos", "synthetic": "eos"}


def test_status_lifecycle_ends_with_eos_and_clips_are_published(two_streams):
    _, _, events = two_streams
    for stream in ("clip", "synthetic"):
        stream_events = [e for _, e in events if e["stream"] == stream]
        states = [e["state"] for e in stream_events if e["type"] == "status"]
        assert states == ["starting", "playing", "eos"]
        assert stream_events[-1]["type"] == "status"
        clips = by_stream(events, stream, "clip")
        assert clips, "at least the whole-stream decision"
        assert clips[-1]["start_frame"] == 0
    synthetic_frames = by_stream(events, "synthetic", "frame")
    assert all(len(e["humans"]) == 2 for e in synthetic_frames)
    later = [e for e in synthetic_frames if e["latest_clip"] is not None]
    assert later and all(
        part["state"] is not None
        for e in later
        for h in e["humans"]
        for part in h["parts"].values()
    )


def test_outputs_predictions_and_annotated_videos(two_streams):
    out, runner, _ = two_streams
    prediction = read_pred(out)
    assert set(prediction.labels) == {"clip", "synthetic"}
    assert sorted(prediction.parts["synthetic"]) == [
        "img_00001.json",
        "img_00006.json",
        "img_00011.json",
    ]
    for stream in ("clip", "synthetic"):
        video = out / f"{stream}.mp4"
        assert video.stat().st_size > 0
    from pipeline.sources import iterate_frames

    frames = list(iterate_frames(str(out / "synthetic.mp4")))
    assert len(frames) == 12


def test_a_failing_stream_does_not_stop_the_others(random_weights, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 100)
    sources = [
        {"id": "bad", "uri": str(broken)},
        {"id": "good", "uri": "synth://?seed=4&people=1&frames=6"},
    ]
    runner, events = run_with_subscriber(make_config(random_weights, sources, tmp_path / "out"))
    assert runner.report.states == {"bad": "stopped", "good": "eos"}
    assert runner.report.failed == ["bad"]
    statuses = by_stream(events, "bad", "status")
    assert [e["state"] for e in statuses][-2:] == ["error", "stopped"]
    assert "bad" in statuses[-2]["stream"] and statuses[-2]["detail"]
    assert [e["frame_index"] for e in by_stream(events, "good", "frame")] == list(range(6))
