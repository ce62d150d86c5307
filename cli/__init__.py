"""Subcommands of `run.py`. Each module has `register(subparsers)` that sets `handler`.

`USER_ERRORS` are the exception families that mean bad input: the CLI prints their message as one
line and exits with code 2.
"""

from bench.report import ReportError
from bench.suite import SuiteError
from cli import (
    ap,
    baseline,
    bench,
    broker,
    decompose,
    eval,
    eval_pose,
    fit_ensemble,
    keys,
    models,
    predict,
    record,
    run,
    ship,
    subscribe,
    synth,
    train,
)
from engines.base import EngineError
from models.registry import ModelError
from parsing.events import EventError
from parsing.pose_eval import PoseSetError
from pipeline.broker import BrokerError
from pipeline.config import ConfigError
from pipeline.metrics import MetricsError
from pipeline.recorder import RecordError
from pipeline.shard import ShardError
from pipeline.sources import SourceError
from tps.formats import FormatError
from tps.synth import SynthError
from transport.zmq import PublisherError

COMMANDS = (
    run, predict, subscribe, record, eval, decompose, eval_pose, baseline, synth, train, ap, ship,
    models, broker, bench, keys, fit_ensemble,
)  # fmt: skip

USER_ERRORS: tuple[type[Exception], ...] = (
    BrokerError,
    ConfigError,
    EngineError,
    EventError,
    FormatError,
    keys.KeysError,
    MetricsError,
    ModelError,
    PoseSetError,
    PublisherError,
    ReportError,
    RecordError,
    ShardError,
    SourceError,
    SuiteError,
    SynthError,
    *train.TrainErrors,
)
