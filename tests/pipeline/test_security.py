"""The event stream's security with real sockets on 127.0.0.1: keys, CURVE, who may listen."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import pytest
import yaml
import zmq

from cli.main import main
from parsing.events import EventSequencer, encode
from parsing.results import StreamStatus
from pipeline.broker import Broker, BrokerCurve
from pipeline.metrics import MetricsSettings, parse_address
from pipeline.runner import Runner
from pipeline.settings import PublishSettings
from tests.pipeline.test_runner import free_endpoint, make_config
from transport.zmq import (
    CurveKeys,
    EventPublisher,
    EventSubscriber,
    PublisherError,
    load_public_key,
    parse_endpoint,
)

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")

LOOPBACK_ANY = "tcp://127.0.0.1:*"
RECEIVE_WAIT_S = 10.0
STRANGER_WAIT_S = 1.0
"""How long a refused subscriber listens, while events keep being published, to get nothing."""
PUBLISH_EVERY_S = 0.05
RUN_WAIT_S = 120.0


def make_keys(folder: Path, name: str, capsys) -> tuple[Path, Path]:
    assert main(["keys", name, "--out", str(folder)]) == 0
    capsys.readouterr()
    return folder / f"{name}.key", folder / f"{name}.key_secret"


@pytest.fixture
def keys(tmp_path: Path, capsys) -> dict[str, Path]:
    """Secret certificates of a server, an admitted reader and a stranger; ``allow`` the folder
    of admitted public certificates."""
    server = make_keys(tmp_path / "server", "server", capsys)[1]
    reader = make_keys(tmp_path / "allow", "reader", capsys)[1]
    stranger = make_keys(tmp_path / "strangers", "stranger", capsys)[1]
    moved = reader.rename(tmp_path / reader.name)  # only public certificates in the folder
    return {"server": server, "reader": moved, "stranger": stranger, "allow": tmp_path / "allow"}


def status(stream: str, sequencer: EventSequencer) -> tuple[str, bytes]:
    topic, event = sequencer.build(StreamStatus(stream, "playing", "", time.time_ns()))
    return topic, encode(event)


def curve_subscriber(endpoint: str, server_public: bytes, certificate: Path) -> EventSubscriber:
    """A subscriber that speaks CURVE to `server_public` with the key pair of `certificate`."""
    return EventSubscriber(
        endpoint,
        curve_server_key=server_public,
        curve_keys=CurveKeys.from_certificate(certificate),
    )


def test_keys_command_writes_a_pair_the_broker_and_publisher_accept(tmp_path, capsys):
    public, secret = make_keys(tmp_path / "k", "server", capsys)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    pair = CurveKeys.from_certificate(secret)
    assert load_public_key(public) == pair.public and len(pair.secret) == 40
    broker_curve = BrokerCurve.from_files(secret)
    assert (broker_curve.public, broker_curve.secret) == (pair.public, pair.secret)
    with EventPublisher(LOOPBACK_ANY, curve=pair) as publisher:
        assert publisher.endpoint.startswith("tcp://127.0.0.1:")
    assert main(["keys", "server", "--out", str(tmp_path / "k")]) == 2
    assert "exists (use --force" in capsys.readouterr().err
    assert main(["keys", "server", "--out", str(tmp_path / "k"), "--force"]) == 0
    assert CurveKeys.from_certificate(secret) != pair, "a fresh pair replaced the old one"


def test_only_an_admitted_subscriber_receives(keys):
    server = CurveKeys.from_certificate(keys["server"])
    sequencer = EventSequencer()
    with (
        EventPublisher(LOOPBACK_ANY, curve=server, curve_allow=keys["allow"]) as publisher,
        curve_subscriber(publisher.endpoint, server.public, keys["reader"]) as reader,
        curve_subscriber(publisher.endpoint, server.public, keys["stranger"]) as stranger,
        EventSubscriber(publisher.endpoint) as plain,
    ):
        assert publisher.wait_for_subscriber(RECEIVE_WAIT_S)
        assert publisher.publish(*status("cam0", sequencer))
        received = reader.receive(RECEIVE_WAIT_S)
        assert received is not None and received[1]["stream"] == "cam0"
        deadline = time.monotonic() + STRANGER_WAIT_S
        while time.monotonic() < deadline:
            publisher.publish(*status("cam0", sequencer))
            assert stranger.receive(PUBLISH_EVERY_S) is None, "a key not in the folder"
            assert plain.receive(PUBLISH_EVERY_S) is None, "a subscriber without CURVE"
        assert publisher.subscriptions == 1, "only the admitted reader's subscription arrived"


def test_a_worker_publishes_through_a_curve_broker(keys, tmp_path, capsys):
    worker_public, worker_secret = make_keys(tmp_path / "workers", "worker", capsys)
    worker_public.rename(keys["allow"] / worker_public.name)
    curve = BrokerCurve.from_files(keys["server"], keys["allow"])
    worker = CurveKeys.from_certificate(worker_secret)
    with Broker(LOOPBACK_ANY, LOOPBACK_ANY, curve=curve) as broker:
        with pytest.raises(PublisherError, match="needs the server's public key"):
            EventPublisher(f">{broker.frontend}", curve=worker)
        with (
            curve_subscriber(broker.backend, curve.public, keys["reader"]) as reader,
            EventPublisher(
                f">{broker.frontend}", curve=worker, curve_server_key=curve.public
            ) as publisher,
        ):
            assert publisher.wait_for_subscriber(RECEIVE_WAIT_S), "the reader's subscription"
            assert publisher.publish(*status("w0", EventSequencer()))
            received = reader.receive(RECEIVE_WAIT_S)
            assert received is not None and received[1]["stream"] == "w0"


def test_pipeline_with_curve_reaches_the_subscribe_command_with_its_key(
    random_weights, keys, tmp_path, capsys
):
    config = make_config(
        random_weights,
        [{"id": "s", "uri": "synth://?seed=1&people=1&frames=4"}],
        tmp_path / "out",
        publish={
            "endpoint": free_endpoint(),
            "wait_for_subscriber_s": RUN_WAIT_S,
            "curve": {"secret_key": str(keys["server"]), "allow": str(keys["allow"])},
        },
        output={"dir": None},
    )
    runner = Runner(config)
    run = threading.Thread(target=runner.run, daemon=True)
    run.start()
    argv = ["subscribe", config.publish.endpoint, "--until-eos", "--timeout", str(RUN_WAIT_S)]
    server_public = keys["server"].with_suffix(".key")
    code = main(
        [*argv, "--curve-server-key", str(server_public), "--curve-key", str(keys["reader"])]
    )
    run.join(RUN_WAIT_S)
    assert code == 0 and not run.is_alive()
    lines = [yaml.safe_load(line) for line in capsys.readouterr().out.splitlines()]
    frames = [line["event"]["frame_index"] for line in lines if line["event"]["type"] == "frame"]
    assert frames == [0, 1, 2, 3]
    assert lines[-1]["event"]["state"] == "eos"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param([], "cannot load", id="missing-server-key"),
        pytest.param(
            ["--curve-key", "{public}"], "expected a secret certificate", id="public-as-own"
        ),
    ],
)
def test_bad_key_files_are_one_line_exit_2(keys, capsys, extra, message):
    public = keys["server"].with_suffix(".key")
    server_key = str(public) if extra else str(public.with_name("nowhere.key"))
    argv = [arg.format(public=public) for arg in extra]
    for command in ("subscribe", "record"):
        args = [command, "tcp://127.0.0.1:5555", "--curve-server-key", server_key, *argv]
        if command == "record":
            args += ["--out", str(keys["allow"].parent / "rec")]
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err


def test_metrics_health_and_events_listen_on_loopback_by_default():
    assert parse_address(MetricsSettings().address)[0] == "127.0.0.1"
    endpoint = parse_endpoint(PublishSettings().endpoint, bind_by_default=True)
    assert endpoint.bind and endpoint.address.startswith("tcp://127.0.0.1:")


def test_config_files_are_data_and_cannot_run_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"sources: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {config}") and "\n" not in err
    assert not marker.exists(), "the YAML tag never ran"
