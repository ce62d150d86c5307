"""The whole pipeline with real parts: GStreamer, our elements, tiny networks, ZeroMQ, files."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import main
from parsing.events import validate
from pipeline.config import validate as validate_config
from pipeline.recorder import Recorder
from pipeline.runner import Runner, StreamProgress
from pipeline.settings import PipelineConfig
from pipeline.sources import iterate_frames
from tps.formats import read_pred, write_pred
from tps.synth.dataset import write_split
from transport.zmq import EventSubscriber

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


def run_with_subscriber(
    config: PipelineConfig, on_event: Callable[[Runner, dict], None] | None = None
) -> tuple[Runner, list[tuple[str, dict]]]:
    """Run the pipeline while a real ZeroMQ subscriber, connected first, collects every event."""
    events: list[tuple[str, dict]] = []
    subscriber = EventSubscriber(config.publish.endpoint)
    done = threading.Event()
    runner = Runner(config)

    def collect() -> None:
        for received in subscriber.events(idle_timeout_s=SUBSCRIBE_TIMEOUT_S, until_final=True):
            events.append(received)
            if on_event is not None:
                on_event(runner, received[1])
        done.set()

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
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
        # the whole-stream decision too names the networks' model set, as every frame does
        frame_sets = {e["model_set"] for e in by_stream(events, stream, "frame")}
        assert len(frame_sets) == 1 and None not in frame_sets
        assert {clip["model_set"] for clip in clips} == frame_sets
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
    assert runner.report.states == {"bad": "error", "good": "eos"}
    assert runner.report.failed == ["bad"]
    statuses = by_stream(events, "bad", "status")
    assert [e["state"] for e in statuses][-2:] == ["error", "stopped"]
    assert "bad" in statuses[-2]["stream"] and statuses[-2]["detail"]
    assert [e["frame_index"] for e in by_stream(events, "good", "frame")] == list(range(6))


def test_each_real_clip_flows_through_at_its_own_size(random_weights, shared_media, tmp_path):
    clips = sorted(shared_media.glob("*.mp4"))
    sources = [{"id": clip.stem, "uri": str(clip)} for clip in clips]
    config = make_config(random_weights, sources, tmp_path, concurrent_streams=2)
    config = config.model_copy(
        update={
            "parser": config.parser.model_copy(
                update={"person": config.parser.person.model_copy(update={"max_persons": 1})}
            )
        }
    )
    runner, events = run_with_subscriber(config)
    assert set(runner.report.states.values()) == {"eos"}
    for clip in clips:
        decoded = list(iterate_frames(str(clip)))
        frame_events = by_stream(events, clip.stem, "frame")
        assert [e["frame_index"] for e in frame_events] == list(range(len(decoded)))
        height, width = decoded[0][2].shape[:2]
        assert {(e["width"], e["height"]) for e in frame_events} == {(width, height)}
        for event in frame_events:
            validate(event)


def test_rtsp_stream_on_loopback_is_parsed(random_weights, rtsp_server, tmp_path):
    url = rtsp_server(
        "( videotestsrc num-buffers=20 ! video/x-raw,width=160,height=120,framerate=10/1"
        " ! x264enc tune=zerolatency ! rtph264pay name=pay0 pt=96 )"
    )
    sources = [{"id": "cam", "uri": f"{url}?transport=tcp"}]
    config = make_config(random_weights, sources, tmp_path, reconnect={"max_attempts": 0})
    runner, events = run_with_subscriber(config)
    frames = by_stream(events, "cam", "frame")
    assert len(frames) >= 15, "most of the 20 frames arrive over RTSP"
    assert [e["frame_index"] for e in frames] == list(range(len(frames)))
    assert [e["state"] for e in by_stream(events, "cam", "status")][-1] == "eos"


def test_metrics_and_health_answer_while_running(random_weights, tmp_path):
    scraped: dict[str, str] = {}

    def scrape(runner: Runner, event: dict) -> None:
        if event["type"] == "frame" and event["frame_index"] == 5 and runner.metrics_url:
            for path in ("/metrics", "/healthz"):
                with urllib.request.urlopen(runner.metrics_url + path, timeout=5) as reply:
                    scraped[path] = reply.read().decode()

    sources = [{"id": "m", "uri": "synth://?seed=5&people=1&frames=10"}]
    config = make_config(random_weights, sources, tmp_path, metrics={"address": "127.0.0.1:0"})
    runner, _ = run_with_subscriber(config, on_event=scrape)
    text = scraped["/metrics"]
    for family in (
        'tps_frames_in_total{stream="m"}',
        'tps_frames_processed_total{stream="m"}',
        'tps_frames_dropped_total{stream="m"}',
        'tps_stage_seconds_bucket{le="0.001",stage="tpsperson"}',
        "tps_end_to_end_latency_seconds_bucket",
        "tps_batch_size_bucket",
        'tps_events_published_total{stream="m",type="frame"}',
        'tps_source_state{state="playing",stream="m"} 1.0',
    ):
        assert family in text, family
    assert json.loads(scraped["/healthz"])["status"] == "ok"
    final = runner.report.metrics.render().decode()
    assert 'tps_frames_processed_total{stream="m"} 10.0' in final


def test_predictions_of_a_synthetic_split_score_with_eval(random_weights, tmp_path, capsys):
    split = tmp_path / "split"
    summary = write_split(split, videos=2, seed=9, split="test", frames=12, size=(160, 120))
    sources = [
        {"id": name, "uri": str(split / "videos" / f"{name}.mp4")} for name in summary.labels
    ]
    out = tmp_path / "out"
    runner, events = run_with_subscriber(make_config(random_weights, sources, out))
    recorder = Recorder()
    for _, event in events:
        recorder.add(event)
    recorded = tmp_path / "recorded"
    write_pred(recorded, recorder.prediction())
    for predictions in (out, recorded):
        assert main(["eval", "--gt", str(split), "--pred", str(predictions), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert set(result["per_video"]) == set(summary.labels)
        assert 0.0 <= result["score"] <= 0.9999


def test_progress_rate_stops_when_the_stream_ends():
    progress = StreamProgress(frames=20, state="eos", started=100.0, ended=110.0)
    assert "20 frames    2.0 fps" in progress.line("s")
