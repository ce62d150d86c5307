"""Metrics: every series over real HTTP on loopback, the health check, addresses, isolation."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from cli import USER_ERRORS
from parsing.results import STREAM_STATES
from pipeline.config import ConfigError, validate
from pipeline.metrics import (
    BATCH_SIZE_BUCKETS,
    DEFAULT_ADDRESS,
    OTHER_ACTION,
    Metrics,
    MetricsError,
    MetricsServer,
    MetricsSettings,
    parse_address,
)

LOOPBACK = "127.0.0.1"
HTTP_TIMEOUT_S = 5.0
STALL_AFTER_S = 0.5
STREAMS = ("cam0", "cam1")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> Metrics:
    return Metrics(STREAMS, clock=clock)


@pytest.fixture
def server(metrics: Metrics) -> Iterator[MetricsServer]:
    with MetricsServer(metrics, LOOPBACK, 0, stall_after_s=STALL_AFTER_S) as running:
        yield running


def get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def scrape(server: MetricsServer) -> Samples:
    status, content_type, body = get(server.url + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def health(server: MetricsServer) -> tuple[int, dict]:
    status, content_type, body = get(server.url + "/healthz")
    assert content_type == "application/json"
    return status, json.loads(body)


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_every_series_after_updates(
    metrics: Metrics, server: MetricsServer, clock: FakeClock
) -> None:
    for _ in range(3):
        metrics.frame_in("cam0")
    metrics.frame_processed("cam0", latency_s=0.02)
    metrics.frame_processed("cam0", latency_s=3.0)
    metrics.frame_processed("cam0")  # latency unknown: counted, not observed
    metrics.frame_dropped("cam0")
    metrics.frame_dropped("cam1", n=4)
    metrics.observe_stage("person", 0.004)
    with metrics.stage_time("pose"):
        clock.advance(0.2)
    metrics.batch("person", 3)
    metrics.batch("person", 32)
    metrics.queue_depth("cam1", "clip", 7)
    metrics.clip_decision("cam0", "lunge")
    metrics.clip_decision("cam0", "lunge")
    metrics.clip_decision("cam0", "moonwalking")
    metrics.event_published("cam0", "frame")
    metrics.event_published("cam1", "status")
    metrics.send_error()
    metrics.source_state("cam0", "playing")
    metrics.reconnect("cam1")
    metrics.reconnect("cam1")

    samples = scrape(server)

    expected = {
        key("tps_frames_in_total", stream="cam0"): 3,
        key("tps_frames_in_total", stream="cam1"): 0,
        key("tps_frames_processed_total", stream="cam0"): 3,
        key("tps_frames_dropped_total", stream="cam0"): 1,
        key("tps_frames_dropped_total", stream="cam1"): 4,
        key("tps_stage_seconds_count", stage="person"): 1,
        key("tps_stage_seconds_bucket", stage="person", le="0.005"): 1,
        key("tps_stage_seconds_bucket", stage="person", le="0.0025"): 0,
        key("tps_stage_seconds_bucket", stage="pose", le="0.1"): 0,
        key("tps_stage_seconds_bucket", stage="pose", le="0.25"): 1,
        key("tps_end_to_end_latency_seconds_count", stream="cam0"): 2,
        key("tps_end_to_end_latency_seconds_sum", stream="cam0"): 3.02,
        key("tps_end_to_end_latency_seconds_bucket", stream="cam0", le="0.025"): 1,
        key("tps_end_to_end_latency_seconds_bucket", stream="cam0", le="2.5"): 1,
        key("tps_end_to_end_latency_seconds_bucket", stream="cam0", le="5.0"): 2,
        key("tps_batch_size_count", network="person"): 2,
        key("tps_batch_size_bucket", network="person", le="2.0"): 0,
        key("tps_batch_size_bucket", network="person", le="4.0"): 1,
        key("tps_batch_size_bucket", network="person", le="32.0"): 2,
        key("tps_queue_depth", stream="cam1", queue="clip"): 7,
        key("tps_clip_decisions_total", stream="cam0", action="lunge"): 2,
        key("tps_clip_decisions_total", stream="cam0", action=OTHER_ACTION): 1,
        key("tps_events_published_total", stream="cam0", type="frame"): 1,
        key("tps_events_published_total", stream="cam1", type="status"): 1,
        key("tps_event_send_errors_total"): 1,
        key("tps_source_reconnects_total", stream="cam0"): 0,
        key("tps_source_reconnects_total", stream="cam1"): 2,
    }
    for state in STREAM_STATES:
        expected[key("tps_source_state", stream="cam0", state=state)] = float(state == "playing")
        expected[key("tps_source_state", stream="cam1", state=state)] = float(state == "starting")
    actual = {series: samples.get(series) for series in expected}
    assert actual == pytest.approx(expected)

    pose_sum = samples[key("tps_stage_seconds_sum", stage="pose")]
    assert pose_sum == pytest.approx(0.2)
    batch_bounds = {
        dict(labels)["le"]
        for name, labels in samples
        if name == "tps_batch_size_bucket" and dict(labels)["network"] == "person"
    }
    assert batch_bounds == {str(float(bound)) for bound in BATCH_SIZE_BUCKETS} | {"+Inf"}
    assert not any(dict(labels).get("action") == "moonwalking" for _, labels in samples)


def test_stage_time_records_a_stage_that_raises(metrics: Metrics, clock: FakeClock) -> None:
    with pytest.raises(RuntimeError), metrics.stage_time("parts"):
        clock.advance(1.5)
        raise RuntimeError("boom")
    assert metrics.registry.get_sample_value("tps_stage_seconds_sum", {"stage": "parts"}) == 1.5


def test_healthz_ok_then_stalled(metrics: Metrics, server: MetricsServer, clock: FakeClock) -> None:
    status, body = health(server)
    assert (status, body["status"]) == (200, "ok")
    assert body["streams"] == {s: {"state": "starting", "age_s": None} for s in STREAMS}

    metrics.source_state("cam0", "playing")
    metrics.source_state("cam1", "playing")
    clock.advance(STALL_AFTER_S / 2)
    metrics.frame_processed("cam0")
    metrics.frame_processed("cam1")
    clock.advance(STALL_AFTER_S / 2)
    status, body = health(server)
    assert (status, body["status"]) == (200, "ok")
    assert body["streams"]["cam0"] == {"state": "playing", "age_s": STALL_AFTER_S / 2}

    metrics.frame_processed("cam1")
    clock.advance(STALL_AFTER_S * 0.8)
    status, body = health(server)
    assert (status, body["status"], body["stalled"]) == (503, "stalled", ["cam0"])
    assert body["streams"]["cam0"]["age_s"] == pytest.approx(STALL_AFTER_S * 1.3)
    assert metrics.last_frame_time("cam1") == pytest.approx(clock.now - STALL_AFTER_S * 0.8)

    metrics.frame_processed("cam0")
    assert health(server)[0] == 200


@pytest.mark.parametrize(
    ("state", "status"),
    [
        pytest.param("reconnecting", 200, id="reconnecting-is-healthy"),
        pytest.param("eos", 200, id="eos"),
        pytest.param("stopped", 200, id="stopped"),
        pytest.param("playing", 503, id="playing"),
    ],
)
def test_only_a_playing_stream_stalls(
    metrics: Metrics, server: MetricsServer, clock: FakeClock, state: str, status: int
) -> None:
    metrics.source_state("cam0", "playing")
    metrics.frame_processed("cam0")
    metrics.source_state("cam0", state)
    clock.advance(STALL_AFTER_S * 2)
    code, body = health(server)
    assert code == status
    assert body["streams"]["cam0"]["state"] == state


def test_entering_playing_restarts_the_stall_timer(metrics: Metrics, clock: FakeClock) -> None:
    metrics.source_state("cam0", "playing")
    metrics.frame_processed("cam0")
    metrics.source_state("cam0", "reconnecting")
    clock.advance(STALL_AFTER_S * 4)
    metrics.source_state("cam0", "playing")
    clock.advance(STALL_AFTER_S / 2)
    assert not metrics.health(STALL_AFTER_S)["cam0"].stalled
    metrics.source_state("cam0", "playing")  # repeating a state is not progress
    clock.advance(STALL_AFTER_S)
    assert metrics.health(STALL_AFTER_S)["cam0"].stalled


def test_unknown_path_is_404(server: MetricsServer) -> None:
    status, _, body = get(server.url + "/nothing")
    assert status == 404
    assert b"/metrics" in body


def test_address_in_use_is_one_clear_line(metrics: Metrics) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsError) as caught:
            MetricsServer(metrics, LOOPBACK, port)
    message = str(caught.value)
    assert f"{LOOPBACK}:{port}" in message
    assert "already in use" in message
    assert "\n" not in message
    assert MetricsError in USER_ERRORS


def test_two_metrics_objects_are_independent(clock: FakeClock) -> None:
    first, second = Metrics(["cam0"], clock=clock), Metrics(["cam0"], clock=clock)
    first.frame_in("cam0")
    first.send_error()
    with (
        MetricsServer(first, LOOPBACK, 0) as first_server,
        MetricsServer(second, LOOPBACK, 0) as second_server,
    ):
        assert first_server.address != second_server.address
        first_samples, second_samples = scrape(first_server), scrape(second_server)
    assert first_samples[key("tps_frames_in_total", stream="cam0")] == 1
    assert second_samples[key("tps_frames_in_total", stream="cam0")] == 0
    assert second_samples[key("tps_event_send_errors_total")] == 0
    assert REGISTRY.get_sample_value("tps_event_send_errors_total") is None


def test_concurrent_updates_are_all_counted(metrics: Metrics) -> None:
    threads_n, per_thread = 4, 500

    def work() -> None:
        for _ in range(per_thread):
            metrics.frame_in("cam0")
            metrics.frame_processed("cam0", latency_s=0.01)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HTTP_TIMEOUT_S)
    value = metrics.registry.get_sample_value
    assert value("tps_frames_in_total", {"stream": "cam0"}) == threads_n * per_thread
    count = value("tps_end_to_end_latency_seconds_count", {"stream": "cam0"})
    assert count == threads_n * per_thread


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        pytest.param(lambda m: m.frame_in("cam9"), "'cam9': not declared", id="stream"),
        pytest.param(lambda m: m.add_stream("cam0"), "already declared", id="duplicate"),
        pytest.param(lambda m: m.source_state("cam0", "paused"), "'paused'", id="state"),
        pytest.param(lambda m: m.event_published("cam0", "log"), "'log'", id="event-type"),
        pytest.param(lambda m: m.frame_dropped("cam0", -1), "n >= 0, got -1", id="negative"),
        pytest.param(lambda m: m.batch("pose", 0), "size >= 1, got 0", id="empty-batch"),
    ],
)
def test_label_values_stay_bounded(metrics: Metrics, call, fragment: str) -> None:
    with pytest.raises(MetricsError, match=fragment):
        call(metrics)


def test_stopped_server_stops_answering_and_cannot_restart(metrics: Metrics) -> None:
    server = MetricsServer(metrics, LOOPBACK, 0)
    server.start()
    url = server.url
    assert get(url + "/healthz")[0] == 200
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=HTTP_TIMEOUT_S)
    with pytest.raises(MetricsError, match="stopped"):
        server.start()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(DEFAULT_ADDRESS, ("127.0.0.1", 9464), id="default"),
        pytest.param("0.0.0.0:0", ("0.0.0.0", 0), id="any-port"),
        pytest.param("metrics.local:80", ("metrics.local", 80), id="hostname"),
        pytest.param("[::1]:9464", ("::1", 9464), id="ipv6"),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("9464", id="no-host"),
        pytest.param(":9464", id="empty-host"),
        pytest.param("127.0.0.1:", id="no-port"),
        pytest.param("127.0.0.1:http", id="named-port"),
        pytest.param("127.0.0.1:70000", id="port-too-big"),
        pytest.param("::1:9464", id="ipv6-unbracketed"),
    ],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(MetricsError, match=f"{text!r}: expected HOST:PORT"):
        parse_address(text)


def test_settings_check_the_address() -> None:
    assert validate(MetricsSettings, {}, "test").address == DEFAULT_ADDRESS
    with pytest.raises(ConfigError, match=r"address: .*'localhost': expected HOST:PORT"):
        validate(MetricsSettings, {"address": "localhost"}, "test")
    with pytest.raises(ConfigError, match="stall_after_s"):
        validate(MetricsSettings, {"stall_after_s": 0}, "test")
