"""Scale-out: sharding, the XSUB/XPUB broker, and 3 worker processes behind it on loopback.

The end-to-end test avoids the slow-joiner problem without sleeps or start-up order: the workers
run in offline mode, whose publisher waits (bounded) for a subscription before its first event,
and the only subscription a worker can get is the test subscriber's, forwarded by the broker (whose
XSUB replays its subscriptions to every worker that connects, the restarted one too). So a
worker's first event leaves only once the whole path worker -> broker -> subscriber exists, and
broker, subscriber and workers can all start at once (their imports overlap). Nothing is lost on
the way: unbounded queues (``hwm 0``) everywhere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
import zmq
import zmq.auth
from prometheus_client.parser import text_string_to_metric_families

from cli.main import build_parser, main
from parsing.events import EventSequencer, encode
from parsing.results import StreamStatus
from pipeline.broker import Broker, BrokerCurve, BrokerError
from pipeline.config import validate
from pipeline.metrics import MetricsServer
from pipeline.settings import PipelineConfig
from pipeline.shard import Shard, ShardError, select_sources, shard_of
from transport.zmq import EventPublisher, EventSubscriber

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
WAIT_S = 60.0
"""Longest wait for any one condition of the end-to-end test (2 busy cores)."""
BROKER_STOP_S = 15.0
SHORT_WAIT_S = 5.0
POLL_S = 0.1
STRANGER_WAIT_MS = 500
"""How long a refused client is watched for messages it must not get."""
WORKERS = 3
STREAMS_PER_WORKER = 2
FRAMES = 40
"""Frames of each synthetic stream: long enough that a worker is killed mid-stream."""
KILL_AFTER_FRAMES = 3
"""Every stream has published this many frames (and its ``playing`` status) when a worker is
killed."""
PROGRESS_FRAMES = 3
"""Frames every surviving stream must publish in each observation window after the kill."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def site_config(weights: dict[str, Path], sources: list[dict], **extra: object) -> dict:
    """A small site: tiny random networks, 160x120 frames, no outputs, metrics off."""
    return {
        "mode": "offline",
        "sources": sources,
        "video": {"width": 160, "height": 120},
        "parser": {
            "person": {"weights": str(weights["person"]), "score_threshold": 0.0, "max_persons": 1},
            "pose": {"weights": str(weights["pose"])},
            "parts": {"weights": str(weights["parts"])},
            "clip": {"networks": [{"weights": str(weights["csn"])}], "hop": 8, "average_clips": 1},
        },
        "publish": {"wait_for_subscriber_s": WAIT_S, "hwm": 0},
        "metrics": {"enabled": False},
        **extra,
    }


def synth_sources(ids: list[str], frames: int) -> list[dict]:
    return [
        {"id": stream, "uri": f"synth://?seed={seed}&people=1&frames={frames}"}
        for seed, stream in enumerate(ids)
    ]


# -- sharding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_stream_exactly_once_whatever_the_order(count):
    ids = [f"cam{j}" for j in range(50)]
    owners = {stream: [i for i in range(count) if Shard(i, count).owns(stream)] for stream in ids}
    assert all(len(found) == 1 for found in owners.values())
    assert {stream: found[0] for stream, found in owners.items()} == {
        stream: shard_of(stream, count) for stream in reversed(ids)
    }
    if count > 1:
        assert len({found[0] for found in owners.values()}) == count, "50 ids reach every shard"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("3/3", id="i-equals-n"),
        pytest.param("0/0", id="n-zero"),
        pytest.param("-1/3", id="negative"),
        pytest.param("1", id="no-slash"),
        pytest.param("a/b", id="letters"),
        pytest.param("1/3/4", id="three-parts"),
    ],
)
def test_bad_shard_is_rejected(text):
    with pytest.raises(ShardError, match="--shard"):
        Shard.parse(text)


def test_selection_keeps_positional_ids_and_everything_else(random_weights):
    data = site_config(random_weights, [{"uri": f"synth://?seed={j}&frames=2"} for j in range(6)])
    config = validate(PipelineConfig, data, "test")
    kept: list[str] = []
    for index in range(WORKERS):
        part = select_sources(config, Shard(index, WORKERS))
        if part is None:
            continue
        assert all(shard_of(stream, WORKERS) == index for stream in part.stream_ids())
        assert part.parser == config.parser and part.video == config.video
        uris = dict(zip(config.stream_ids(), (s.uri for s in config.sources), strict=True))
        assert all(source.uri == uris[source.id] for source in part.sources)
        kept += part.stream_ids()
    assert sorted(kept) == sorted(config.stream_ids())


def test_cli_bad_shard_is_one_line_and_empty_share_exits_0(random_weights, tmp_path, capsys):
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site_config(random_weights, synth_sources(["cam0"], 2))))
    assert main(["run", "-c", str(path), "--shard", "3/3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --shard '3/3'") and "\n" not in err
    # cam0 belongs to shard 0 of 3: shards 1 and 2 have nothing to run, start nothing, exit 0
    assert shard_of("cam0", 3) == 0
    assert main(["run", "-c", str(path), "--shard", "2/3"]) == 0


# -- the broker, in process ----------------------------------------------------------------------
def status_message(stream: str, state: str, sequencer: EventSequencer) -> tuple[str, bytes]:
    topic, event = sequencer.build(StreamStatus(stream, state, "", time.time_ns()))
    return topic, encode(event)


def wait_for(condition: Callable[[], bool], timeout_s: float = SHORT_WAIT_S) -> bool:
    """Poll `condition` (a counter another thread updates) until true or `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def test_broker_forwards_subscriptions_up_events_down_and_counts(tmp_path):
    with Broker(f"tcp://{LOOPBACK}:*", f"tcp://{LOOPBACK}:*", hwm=0) as broker:
        assert broker.frontend.startswith(f"tcp://{LOOPBACK}:")
        with (
            MetricsServer(broker.metrics, LOOPBACK, 0) as server,  # type: ignore[arg-type]
            EventSubscriber(broker.backend) as subscriber,
        ):
            assert wait_for(lambda: broker.metrics.subscriptions == 1)
            # the worker side connects; the broker replays the subscription to it
            publisher = EventPublisher(">" + broker.frontend, wait_for_subscriber_s=SHORT_WAIT_S)
            with publisher:
                assert publisher.subscriptions == 1
                sequencer = EventSequencer()
                for state in ("starting", "playing", "eos"):
                    assert publisher.publish(*status_message("cam0", state, sequencer))
                received = [subscriber.receive(SHORT_WAIT_S) for _ in range(3)]
            assert [event["state"] for _, event in received] == ["starting", "playing", "eos"]
            assert wait_for(lambda: broker.metrics.forwarded("status") == 3)
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=SHORT_WAIT_S) as reply:
                families = {
                    f.name: f for f in text_string_to_metric_families(reply.read().decode())
                }
            forwarded = {
                s.labels["type"]: s.value
                for s in families["tps_broker_messages_forwarded"].samples
                if s.name.endswith("_total")
            }
            assert forwarded == {"frame": 0, "clip": 0, "status": 3, "other": 0}
            assert families["tps_broker_subscriptions"].samples[0].value == 1
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=SHORT_WAIT_S) as reply:
                assert json.load(reply)["status"] == "ok"
    assert broker.metrics.health(1.0, 1.0)["proxy"].stalled
    assert broker.metrics.value("up") == 0


def test_broker_curve_admits_only_allowed_clients(tmp_path):
    for name, folder in (
        ("broker", "server"), ("worker", "allow"), ("reader", "allow"), ("stranger", "strangers")
    ):  # fmt: skip
        (tmp_path / folder).mkdir(exist_ok=True)
        zmq.auth.create_certificates(tmp_path / folder, name)
    curve = BrokerCurve.from_files(tmp_path / "server" / "broker.key_secret", tmp_path / "allow")
    context = zmq.Context()

    def client(kind: int, certificate: Path, endpoint: str) -> zmq.Socket:
        public, secret = zmq.auth.load_certificate(certificate)
        sock = context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.CURVE_SERVERKEY, curve.public)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"tps/")
        sock.connect(endpoint)
        return sock

    try:
        with Broker(f"tcp://{LOOPBACK}:*", f"tcp://{LOOPBACK}:*", curve=curve) as broker:
            reader = client(zmq.SUB, tmp_path / "allow" / "reader.key_secret", broker.backend)
            stranger = client(
                zmq.SUB, tmp_path / "strangers" / "stranger.key_secret", broker.backend
            )
            assert wait_for(lambda: broker.metrics.subscriptions == 1)
            worker = client(zmq.XPUB, tmp_path / "allow" / "worker.key_secret", broker.frontend)
            assert worker.poll(SHORT_WAIT_S * 1000), "the allowed worker gets the subscription"
            assert worker.recv() == b"\x01tps/"
            topic, payload = status_message("cam0", "starting", EventSequencer())
            worker.send_multipart([topic.encode(), payload])
            assert reader.poll(SHORT_WAIT_S * 1000)
            assert reader.recv_multipart() == [topic.encode(), payload]
            assert not stranger.poll(STRANGER_WAIT_MS), (
                "a client whose key is not allowed gets nothing"
            )
    finally:
        context.destroy(linger=0)


@pytest.mark.parametrize(
    "argv, message",
    [
        pytest.param(["--frontend", f">tcp://{LOOPBACK}:5559"], "not '>'", id="connect-form"),
        pytest.param(["--backend", "udp://x:1"], "backend endpoint", id="bad-transport"),
        pytest.param(["--curve-allow", "."], "needs --curve-secret", id="allow-without-keys"),
        pytest.param(["--curve-secret", "missing.key_secret"], "cannot load", id="no-key-file"),
    ],
)
def test_broker_cli_bad_input_is_one_line(argv, message, capsys):
    assert main(["broker", "--frontend", f"tcp://{LOOPBACK}:*", "--backend",
                 f"tcp://{LOOPBACK}:*", *argv]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_broker_endpoint_in_use_is_refused():
    with (
        Broker(f"tcp://{LOOPBACK}:*", f"tcp://{LOOPBACK}:*") as broker,
        pytest.raises(BrokerError, match="address already in use"),
    ):
        Broker(broker.frontend, f"tcp://{LOOPBACK}:*")


# -- 3 workers behind a broker, end to end -------------------------------------------------------
class Collector:
    """Every event the subscriber gets, in arrival order; waits are woken by arrivals."""

    def __init__(self, endpoint: str) -> None:
        self.subscriber = EventSubscriber(endpoint, hwm=0)
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            received = self.subscriber.receive(POLL_S)
            if received is not None:
                with self._changed:
                    self.events.append(received[1])
                    self._changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, WAIT_S), f"timed out waiting for {what}"

    def frames(self, stream: str) -> list[int]:
        return [
            e["frame_index"] for e in self.events if e["stream"] == stream and e["type"] == "frame"
        ]

    def states(self, stream: str) -> list[str]:
        return [e["state"] for e in self.events if e["stream"] == stream and e["type"] == "status"]

    def ended(self, stream: str) -> bool:
        return self.states(stream)[-1:] == ["eos"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(SHORT_WAIT_S)
        self.subscriber.close()


def broker_metrics(url: str) -> dict[str, float]:
    """``{sample name with labels: value}`` from the broker's /metrics; {} while it is not up."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=SHORT_WAIT_S) as reply:
            text = reply.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}
    return {
        sample.name + "".join(f"/{v}" for v in sample.labels.values()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `run.py` subprocesses (output in tmp_path); any still running are killed after."""
    started: list[subprocess.Popen] = []

    def spawn(name: str, *argv: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "run.py", *argv],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(SHORT_WAIT_S)


@pytest.mark.slow
def test_three_workers_behind_a_broker_cover_every_stream_once_and_survive_a_kill(
    random_weights, tmp_path, processes
):
    ids = []
    for j in range(100):  # two streams per shard, so every worker has work and a kill shows
        stream = f"cam{j}"
        if [shard_of(s, WORKERS) for s in ids].count(shard_of(stream, WORKERS)) < 2:
            ids.append(stream)
    assert len(ids) == WORKERS * STREAMS_PER_WORKER
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(site_config(random_weights, synth_sources(ids, FRAMES))))
    front, back, metrics_port = free_port(), free_port(), free_port()
    url = f"http://{LOOPBACK}:{metrics_port}"
    broker = processes(
        "broker", "broker", "--frontend", f"tcp://{LOOPBACK}:{front}",
        "--backend", f"tcp://{LOOPBACK}:{back}", "--metrics", f"{LOOPBACK}:{metrics_port}",
        "--hwm", "0",
    )  # fmt: skip
    collector = Collector(f"tcp://{LOOPBACK}:{back}")
    try:

        def worker(index: int) -> subprocess.Popen:
            return processes(
                f"worker{index}", "run", "-c", str(site), "--shard", f"{index}/{WORKERS}",
                "--publish", f">tcp://{LOOPBACK}:{front}", "--metrics", "off",
            )  # fmt: skip

        workers = [worker(index) for index in range(WORKERS)]
        # "playing" comes from the runner's supervision loop once it reads the pipeline's state
        # change off the bus, while the streaming threads already publish frames: under load
        # several frames can precede it, so the kill waits for both
        collector.wait_until(
            lambda: all(
                len(collector.frames(s)) >= KILL_AFTER_FRAMES and "playing" in collector.states(s)
                for s in ids
            ),
            "every stream's first frames and its playing status",
        )
        victim = 1
        victims = [s for s in ids if shard_of(s, WORKERS) == victim]
        survivors = [s for s in ids if s not in victims]
        workers[victim].send_signal(signal.SIGKILL)
        assert workers[victim].wait(SHORT_WAIT_S) == -signal.SIGKILL
        # window 1 lets what the victim sent before dying drain; in window 2 it must add nothing
        counts: dict[str, int] = {}
        for window in (1, 2):
            start = {s: len(collector.frames(s)) for s in survivors}
            collector.wait_until(
                lambda start=start: all(
                    len(collector.frames(s)) >= start[s] + PROGRESS_FRAMES for s in survivors
                ),
                f"the surviving streams to go on (window {window})",
            )
            now = {s: len(collector.frames(s)) for s in victims}
            assert window == 1 or now == counts, "the killed worker's streams stopped"
            counts = now
        assert all(not collector.ended(s) for s in victims)
        assert all(counts[s] < FRAMES for s in victims), "killed mid-stream"

        workers[victim] = worker(victim)
        collector.wait_until(lambda: all(collector.ended(s) for s in ids), "every stream's eos")
        for process in workers:
            assert process.wait(WAIT_S) == 0
        for stream in survivors:
            assert collector.frames(stream) == list(range(FRAMES))
            assert collector.states(stream) == ["starting", "playing", "eos"]
        for stream in victims:
            before, after = counts[stream], collector.frames(stream)[counts[stream] :]
            assert collector.frames(stream)[:before] == list(range(before))
            assert after == list(range(FRAMES)), "the restarted worker resumes its streams"
            assert collector.states(stream) == ["starting", "playing", "starting", "playing", "eos"]
        assert {e["stream"] for e in collector.events} == set(ids)

        received = len([e for e in collector.events if e["type"] == "frame"])
        assert wait_for(
            lambda: broker_metrics(url).get("tps_broker_messages_forwarded_total/frame") == received
        ), "the broker counted every frame event it forwarded"
        assert broker_metrics(url)["tps_broker_subscriptions"] == 1
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(BROKER_STOP_S) == 0
    finally:
        collector.close()


# -- Kubernetes manifests ------------------------------------------------------------------------
K8S_DIR = REPO / "deploy" / "k8s"
K8S_VERSION = "1.30.0"
"""The Kubernetes release whose OpenAPI schemas the manifests are checked against."""
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def manifests() -> list[dict]:
    return [
        document
        for path in sorted(K8S_DIR.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document is not None
    ]


def one(kind: str, name: str) -> dict:
    found = [m for m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: expected one, found {len(found)}"
    return found[0]


def container_ports(workload: dict) -> dict[str, int]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return {port["name"]: port["containerPort"] for c in containers for port in c["ports"]}


def test_manifests_validate_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (the dev extra) is not installed"
    )
    documents = manifests()
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in documents)
    assert kinds == [
        ("ConfigMap", "tps-site"),
        ("Deployment", "tps-broker"),
        ("PersistentVolumeClaim", "tps-weights"),
        ("Service", "tps-broker"),
        ("Service", "tps-worker"),
        ("StatefulSet", "tps-worker"),
    ]


@pytest.mark.parametrize(
    "kind, name", [("Deployment", "tps-broker"), ("StatefulSet", "tps-worker")]
)
def test_workloads_selectors_probes_services_and_scrape_ports_agree(kind, name):
    workload = one(kind, name)
    template = workload["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = container_ports(workload)
    service = one("Service", name)
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports.keys()
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}.items() <= ports.items()
    for container in template["spec"]["containers"]:
        for probe in PROBES:
            if probe in container:
                # liveness: a worker restarts only when stuck (/livez), not for a lost camera
                path = "/livez" if (kind, probe) == ("StatefulSet", "livenessProbe") else "/healthz"
                assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
        assert "livenessProbe" in container and "readinessProbe" in container
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    for other in manifests():  # no other workload's selector takes these pods
        if other["kind"] in ("Deployment", "StatefulSet") and other["metadata"]["name"] != name:
            assert not other["spec"]["selector"]["matchLabels"].items() <= labels.items()


def worker_argv(
    pod_name: str, env: dict[str, str], command: list[str], args: list[str]
) -> list[str]:
    """What the worker container's shell wrapper runs, with `python` replaced by printf."""
    script = args[0].replace("exec python ", "exec printf '%s\\n' ", 1)
    result = subprocess.run(
        [*command, script],
        env={"PATH": os.environ["PATH"], **env, "POD_NAME": pod_name},
        capture_output=True, text=True, timeout=SHORT_WAIT_S, check=True,
    )  # fmt: skip
    return result.stdout.splitlines()


def test_worker_pods_run_their_ordinal_as_shard_of_replicas_and_publish_to_the_broker():
    statefulset = one("StatefulSet", "tps-worker")
    spec = statefulset["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SHARDS"] == str(spec["replicas"])
    field = next(e for e in container["env"] if e["name"] == "POD_NAME")["valueFrom"]
    assert field == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert one("Service", spec["serviceName"])["spec"]["clusterIP"] == "None"
    broker_ports = container_ports(one("Deployment", "tps-broker"))
    config_map = next(
        v["configMap"]["name"] for v in spec["template"]["spec"]["volumes"] if "configMap" in v
    )
    site = yaml.safe_load(one("ConfigMap", config_map)["data"]["site.yaml"])
    config = validate(PipelineConfig, site, "deploy/k8s/configmap.yaml")
    static = {k: v for k, v in env.items() if v is not None}
    owned: list[str] = []
    for ordinal in range(spec["replicas"]):
        argv = worker_argv(f"tps-worker-{ordinal}", static, container["command"], container["args"])
        assert argv[0] == "run.py"
        args = build_parser().parse_args(argv[1:])
        assert args.command == "run" and args.shard == f"{ordinal}/{spec['replicas']}"
        assert args.publish == f">tcp://{env['BROKER']}:{broker_ports['frontend']}"
        assert args.metrics.endswith(f":{container_ports(statefulset)['metrics']}")
        assert str(args.config).startswith("/etc/tps/")
        part = select_sources(config, Shard.parse(args.shard))
        assert part is not None, f"shard {args.shard} of the example site would have no stream"
        owned += part.stream_ids()
    assert sorted(owned) == sorted(config.stream_ids())
