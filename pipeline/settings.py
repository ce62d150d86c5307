"""The pipeline's YAML: one file describes a whole pipeline (sources, parser, outputs).

    mode: offline
    sources:
      - {id: gym, uri: rtsp://127.0.0.1:8554/gym?transport=tcp}
      - {uri: videos/clip.mp4}
    video: {width: 320, height: 240, fps: 25}
    parser: {person: {weights: ...}, pose: {...}, parts: {...}, clip: {networks: [...]}}
    publish: {endpoint: tcp://127.0.0.1:5555}
    metrics: {address: 127.0.0.1:9464}
    output: {dir: out}

Every section is a frozen pydantic model with unknown keys rejected; source URIs are parsed while
validating, so a bad URI is reported with its key path (``sources.1.uri``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from parsing.settings import ParserSettings, Section
from pipeline.config import (
    URI_OR_PATH,
    ConfigError,
    RawConfig,
    apply_overrides,
    load_config,
    validate,
)
from pipeline.metrics import MetricsSettings
from pipeline.sources import SourceError, parse_source
from transport.zmq import CurveKeys, load_public_key

Mode = Literal["live", "offline"]


class SourceSettings(Section):
    """One stream."""

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="stream id (s0, ...)")
    uri: Annotated[str, URI_OR_PATH] = Field(
        description="file path (relative to the config file), file://, rtsp://, v4l2:// or"
        " synth:// URI"
    )
    loop: bool = Field(False, description="start a file again at its end (frame numbers go on)")

    @field_validator("uri")
    @classmethod
    def _parses(cls, uri: str) -> str:
        try:
            parse_source(uri)
        except SourceError as error:
            raise ValueError(str(error)) from None
        return uri


class ReconnectSettings(Section):
    """Live sources (RTSP, cameras) reconnect after an error or an end, backing off."""

    initial_delay_s: float = Field(1.0, gt=0, description="wait before the first retry")
    max_delay_s: float = Field(30.0, gt=0, description="longest wait between retries")
    jitter: float = Field(0.25, ge=0, le=1, description="random +-fraction of each wait")
    max_attempts: int | None = Field(
        None, ge=0, description="retries in a row before giving up (null: unlimited)"
    )


class VideoSettings(Section):
    """Every source is normalised to this size and rate (None keeps the source's)."""

    width: int | None = Field(None, ge=16, description="frame width in pixels")
    height: int | None = Field(None, ge=16, description="frame height in pixels")
    fps: float | None = Field(None, gt=0, description="frames per second")


class LiveSettings(Section):
    """Live mode: which frames the parser takes when the input is faster than it."""

    max_in_flight: int = Field(
        1,
        ge=0,
        description="frames parsed at once, over all streams, the places going to the streams in"
        " turn; a frame arriving while this many are in flight, or while a free place waits for"
        " another stream's turn, is dropped at the stamp (0: no limit, only the leaky queue drops)",
    )
    queue_frames: int = Field(1, ge=1, description="frames queued before the parser (leaky)")


class BatchingSettings(Section):
    """The micro-batchers that serve all streams with one call per network."""

    max_batch: int = Field(8, ge=1, description="most samples per network call")
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="longest wait for a batch to fill; 0 batches what queued during the last call",
    )


class CurveSettings(Section):
    """CurveZMQ on the event stream: encryption and which clients may connect (docs/security.md)."""

    secret_key: Path = Field(
        description="this end's secret certificate (NAME.key_secret from run.py keys): the "
        "server's when binding, the worker's own when connecting to a CURVE broker"
    )
    allow: Path | None = Field(
        None,
        description="binding: folder of the public certificates (*.key) of admitted subscribers; "
        "null admits any CURVE client (encryption without authentication)",
    )
    server_key: Path | None = Field(
        None, description="connecting (>tcp://): the broker's public certificate (NAME.key)"
    )

    def publisher_options(self) -> dict[str, Any]:
        """`EventPublisher` keyword arguments, with the keys read from their files.

        Raises:
            PublisherError: a certificate is missing, unreadable or of the wrong kind.
        """
        server_key = None if self.server_key is None else load_public_key(self.server_key)
        return {
            "curve": CurveKeys.from_certificate(self.secret_key),
            "curve_allow": self.allow,
            "curve_server_key": server_key,
        }


class PublishSettings(Section):
    """The ZeroMQ event stream."""

    endpoint: str = Field(
        "tcp://127.0.0.1:5555", description="tcp://.. or @tcp://.. binds, >tcp://.. connects"
    )
    hwm: int = Field(10000, ge=0, description="messages queued per subscriber (0: unlimited)")
    wait_for_subscriber_s: float = Field(
        2.0, ge=0, description="offline mode: wait this long for a subscriber before starting"
    )
    curve: CurveSettings | None = Field(
        None, description="CurveZMQ keys; null publishes in clear text (loopback only is safe)"
    )


class OutputSettings(Section):
    """What is written to disk."""

    dir: Path | None = Field(None, description="output folder, or null for none")
    annotated_video: bool = Field(True, description="an annotated MP4 per stream")
    predictions: bool = Field(True, description="the Kinetics-TPS prediction files")


class SynthSplitSettings(Section):
    """A synthetic split the run needs, rendered on first use and reused afterwards."""

    out: Path = Field(description="split folder (videos/ and ground truth)")
    videos: int = Field(ge=1, description="number of videos")
    seed: int = Field(description="random seed: the same seed renders the same split")
    split: str = Field("test", description="name prefix of the videos")
    frames: int = Field(64, ge=1, description="frames per video")
    width: int = Field(320, ge=32, description="frame width")
    height: int = Field(240, ge=32, description="frame height")
    fps: int = Field(25, ge=1, description="frames per second")


class PipelineConfig(Section):
    """A whole pipeline."""

    mode: Mode = Field("offline", description="live: real time, drops; offline: lossless")
    sources: tuple[SourceSettings, ...] = Field(description="the streams (at least one)")
    video: VideoSettings = VideoSettings()
    parser: ParserSettings
    live: LiveSettings = LiveSettings()
    reconnect: ReconnectSettings = ReconnectSettings()
    batching: BatchingSettings = BatchingSettings()
    publish: PublishSettings = PublishSettings()
    metrics: MetricsSettings = MetricsSettings()
    output: OutputSettings = OutputSettings()
    ground_truth: Path | None = Field(
        None, description="a split's folder with gt_*.json: the run ends with its score"
    )
    generate: SynthSplitSettings | None = Field(
        None, description="render this synthetic split first unless it exists (the demo)"
    )
    concurrent_streams: int | None = Field(
        None, ge=1, description="offline: most streams parsed at once (null: all)"
    )
    start_timeout_s: float = Field(
        30.0,
        gt=0,
        description="a stream not playing this long after it starts fails (a live one retries)",
    )

    @field_validator("sources")
    @classmethod
    def _some_sources(cls, sources: tuple[SourceSettings, ...]) -> tuple[SourceSettings, ...]:
        # not min_length: pydantic would also call a list of one bad source empty
        if not sources:
            raise ValueError("expected at least one source")
        return sources

    @model_validator(mode="after")
    def _unique_ids(self) -> PipelineConfig:
        ids = self.stream_ids()
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"stream ids must be unique, repeated: {duplicated}")
        return self

    @model_validator(mode="after")
    def _predictions_need_clips(self) -> PipelineConfig:
        if self.parser.clip is None and self.output.dir is not None and self.output.predictions:
            raise ValueError(
                "output.predictions: the Kinetics-TPS prediction files need an action label, and"
                " parser.clip is null; add parser.clip or set output.predictions: false"
            )
        if self.parser.clip is None and self.ground_truth is not None:
            raise ValueError("ground_truth: scoring needs parser.clip (null here)")
        return self

    def stream_ids(self) -> list[str]:
        """The id of every source: its own, else s0, s1, ... by position."""
        return [source.id or f"s{index}" for index, source in enumerate(self.sources)]


def load_parser_settings(path: Path, overrides: Sequence[str] = ()) -> ParserSettings:
    """The ``parser`` section of a pipeline YAML, with ``key.path=value`` overrides applied.

    Only that section is validated: the config's sources (maybe never rendered here) are not.

    Raises:
        ConfigError: the file is unreadable, has no parser section, or it fails validation.
    """
    data = dict(load_config(path, RawConfig, PipelineConfig).root or {})
    apply_overrides(data, list(overrides), str(path))
    if "parser" not in data:
        raise ConfigError(f"{path}: parser: missing (eval-pose measures the parser's stages)")
    return validate(ParserSettings, data["parser"], f"{path}: parser")
