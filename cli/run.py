"""``run.py run``: the streaming parser on the sources of a config (or given on the command line).

    python run.py run -c configs/demo.yaml --source rtsp://cam/1 --mode live \\
        --publish '>tcp://broker:5559' --metrics 127.0.0.1:9464 --out out/

Exit codes: 0 every stream ended (or was stopped) cleanly, 1 some stream failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict

from pipeline.config import (
    CAMERA_CONFIG,
    DEMO_CONFIG,
    ConfigError,
    RawConfig,
    apply_overrides,
    load_config,
    validate,
)
from pipeline.runner import Runner, RunReport
from pipeline.settings import PipelineConfig, SynthSplitSettings
from pipeline.shard import apply_shard
from pipeline.sources import SynthSource, parse_source
from tps.formats import GT_VIDEO_FILE, read_gt
from tps.scorer import evaluate
from tps.synth.dataset import write_split

log = logging.getLogger(__name__)


def config_path(args: argparse.Namespace) -> Path:
    """`-c`, else the camera config for a user's `--source`, else the demo's."""
    return args.config or (CAMERA_CONFIG if args.source else DEMO_CONFIG)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `run` shares with the bare `run.py` (the demo)."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help="pipeline YAML (default: configs/camera.yaml with --source, else configs/demo.yaml)",
    )
    parser.add_argument("--source", action="append", metavar="URI", help="replace the sources")
    parser.add_argument("--mode", choices=("live", "offline"), help="override the mode")
    parser.add_argument("--publish", metavar="ENDPOINT", help="ZeroMQ endpoint for events")
    parser.add_argument("--metrics", metavar="HOST:PORT", help="metrics address ('off': none)")
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. parser.parts.paint=false (repeatable)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the streaming parser", description=__doc__)
    add_run_arguments(parser)
    parser.add_argument("--shard", metavar="I/N", help="run only shard I of N of the streams")
    parser.set_defaults(handler=handle)


class _GenerateOnly(BaseModel):
    """The `generate` section alone: it must run before sources that name its videos validate."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    generate: SynthSplitSettings | None = None


def configure(args: argparse.Namespace) -> PipelineConfig:
    """The config file with the command line's overrides applied (validated again).

    A synthetic split the config asks for is rendered first (only once), since its sources may
    be the split's videos.
    """
    for uri in args.source or ():
        parse_source(uri)  # a bad --source is named alone, not as a key of a config it replaces
    path = config_path(args)
    if not args.source:
        prepare(load_config(path, _GenerateOnly).generate)
    if args.source:  # the config's own sources (maybe never rendered here) are replaced
        data = dict(load_config(path, RawConfig, PipelineConfig).root or {})
    else:
        config = load_config(path, PipelineConfig)
        data = config.model_dump(mode="python", exclude_unset=False)
    apply_overrides(data, args.set, str(path))
    if args.source:
        ids = unique_ids([source_name(uri) for uri in args.source])
        data["sources"] = [{"id": i, "uri": uri} for i, uri in zip(ids, args.source, strict=True)]
        # the config's ground truth and generator belong to its own videos, not to these
        data["ground_truth"] = None
        data["generate"] = None
        if not args.out:
            data["output"] = {**data.get("output", {}), "dir": Path("out") / "_".join(ids)[:80]}
    if args.mode:
        data["mode"] = args.mode
    if args.publish:
        data["publish"] = {**data.get("publish", {}), "endpoint": args.publish}
    if args.metrics:
        enabled = args.metrics != "off"
        data["metrics"] = {**data.get("metrics", {}), "enabled": enabled}
        if enabled:
            data["metrics"]["address"] = args.metrics
    if args.out:
        data["output"] = {**data.get("output", {}), "dir": args.out}
    return validate(PipelineConfig, data, f"{path} (with command-line options)")


def source_name(uri: str) -> str:
    """A stream id a user recognises: a file's stem, an RTSP path's last part, a device's name."""
    path = urlsplit(uri).path if "://" in uri else uri
    name = Path(unquote(path)).stem or urlsplit(uri).hostname or urlsplit(uri).scheme
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "stream"


def unique_ids(names: list[str]) -> list[str]:
    """`names` with a repeated one numbered (clip, clip_1, ...)."""
    seen: dict[str, int] = {}
    ids = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        ids.append(name if count == 0 else f"{name}_{count}")
    return ids


def summarise(config: PipelineConfig, report: RunReport) -> None:
    """Per-stream lines, where outputs went and, with ground truth, the Kinetics-TPS score."""
    for stream, progress in report.progress.items():
        print(progress.line(stream))
    for stream, paths in report.video_paths.items():
        for path in paths:
            print(f"{stream}: annotated {'image' if path.suffix == '.png' else 'video'} {path}")
    if config.output.dir and report.prediction is not None and config.output.predictions:
        print(f"predictions: {config.output.dir}")
    if config.ground_truth is not None and report.prediction is not None:
        gt = read_gt(config.ground_truth)
        gt = type(gt)(
            labels={v: a for v, a in gt.labels.items() if v in report.prediction.labels},
            parts={v: f for v, f in gt.parts.items() if v in report.prediction.labels},
        )
        if not gt.labels:
            raise ConfigError(
                f"ground_truth {config.ground_truth}: none of its videos is a stream id here"
            )
        result = evaluate(gt, report.prediction)
        print(
            f"Kinetics-TPS score {result.score:.4f}  video accuracy {result.video_accuracy:.4f}"
            f"  mean PSC {result.mean_psc:.4f}  ({len(gt.labels)} videos)"
        )


def prepare(split: SynthSplitSettings | None) -> None:
    """Render the synthetic split a config asks for, unless it is there already."""
    if split is None or (split.out / GT_VIDEO_FILE).is_file():
        return
    print(f"rendering {split.videos} synthetic videos into {split.out} (first run only)")
    write_split(
        split.out,
        split.videos,
        split.seed,
        split.split,
        split.frames,
        (split.width, split.height),
        split.fps,
    )


def execute(config: PipelineConfig) -> int:
    """Prepare, run, summarise; the exit code."""
    prepare(config.generate)
    report = Runner(config).run()
    summarise(config, report)
    for detail in report.errors.values():
        print(f"error: {detail}", file=sys.stderr)
    return 1 if report.failed else 0


ENDLESS_SYNTH = "source %s: no frames= given, the synthetic stream is endless; stop it with Ctrl-C"


def warn_endless(config: PipelineConfig) -> None:
    """Say at start that an offline run will not end by itself: it waits for every stream's end,
    and a synthetic source without ``frames=`` has none (live ones run for ever on purpose)."""
    if config.mode != "offline":
        return
    for source in config.sources:
        spec = parse_source(source.uri)
        if isinstance(spec, SynthSource) and spec.frames is None:
            log.warning(ENDLESS_SYNTH, source.uri)


def handle(args: argparse.Namespace) -> int:
    config = apply_shard(configure(args), args.shard)
    if config is None:
        return 0
    warn_endless(config)
    return execute(config)
