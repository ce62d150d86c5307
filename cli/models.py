"""``run.py models info|convert|export``: list the model zoo, convert checkpoints, export ONNX.

- ``info [NAME ...] [--json] [--weights DIR]``: parameters and GFLOPs of each registered model at
  its default input (`input_shape`, batch 1). FLOPs are counted by
  `torch.utils.flop_counter.FlopCounterMode` on the meta device (no memory, no compute); it counts
  a multiply-add as 2 FLOPs, so GMACs (what OpenMMLab model zoos list as "FLOPs") are half the
  figure. Then the real networks the weights manifest describes (``make real-weights``): stage,
  input, parameters, licence, origin, file and whether its sha256 matches the manifest.
- ``convert IN OUT --arch NAME [--layout L] [--classes FILE|N] [--reinit-head]``: load any
  supported checkpoint layout strictly and write our safetensors format.
- ``export NAME OUT.onnx [--weights W]``: ONNX with a dynamic batch axis, at `input_shape`.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import torch
from torch.utils.flop_counter import FlopCounterMode

import models
from engines.onnx_export import export_onnx
from models.checkpoint import FORMAT, MIGRATIONS, Classes
from parsing.real_models import DEFAULT_WEIGHTS_DIR, RealNetwork, real_zoo, sha256_of

log = logging.getLogger(__name__)

GIGA = 1e9
MEGA = 1e6
JSON_SUFFIX = ".json"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `models` command and its `info`, `convert` and `export` actions."""
    parser = subparsers.add_parser("models", help="model zoo: info, convert, export")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    info = actions.add_parser("info", help="parameters and GFLOPs of registered models")
    info.add_argument("names", nargs="*", metavar="NAME", help="models to show (default: all)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument(
        "--weights",
        type=Path,
        default=DEFAULT_WEIGHTS_DIR,
        help="folder whose manifest.json lists the real networks",
    )
    info.set_defaults(handler=_info)

    convert = actions.add_parser("convert", help="convert a checkpoint to our format")
    convert.add_argument("source", type=Path, metavar="IN", help=".pth/.pt/.safetensors file")
    convert.add_argument("target", type=Path, metavar="OUT", help="the .safetensors file to write")
    _add_model_arguments(convert, arch_flag=True)
    convert.set_defaults(handler=_convert)

    export = actions.add_parser("export", help="export a model to ONNX (dynamic batch)")
    export.add_argument("arch", metavar="NAME", help="registered model name")
    export.add_argument("target", type=Path, metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument("--weights", type=Path, help="checkpoint to load (any layout)")
    _add_model_arguments(export, arch_flag=False)
    export.set_defaults(handler=_export)


def _add_model_arguments(parser: argparse.ArgumentParser, *, arch_flag: bool) -> None:
    if arch_flag:
        parser.add_argument("--arch", required=True, help="registered model name")
    parser.add_argument(
        "--layout",
        default="auto",
        choices=("auto", *MIGRATIONS),
        help="checkpoint key layout (default: detect)",
    )
    parser.add_argument(
        "--classes",
        help="class count N, a text file with one name per line, or a JSON list / {head: list}",
    )
    parser.add_argument(
        "--reinit-head",
        action="store_true",
        help="keep the classifier freshly initialised (class count differs from the checkpoint)",
    )


def _read_classes(spec: str | None, default_count: int | dict[str, int]) -> Classes:
    """Class names from `--classes` (N, a text file or a JSON file); index names by default."""
    if spec is None:
        if isinstance(default_count, dict):
            return {head: _index_names(count) for head, count in default_count.items()}
        return _index_names(default_count)
    if spec.isdigit():
        return _index_names(int(spec))
    path = Path(spec)
    if not path.is_file():
        raise models.ModelError(f"--classes: expected a number or an existing file, got {spec!r}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() != JSON_SUFFIX:
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise models.ModelError(f"--classes {path}: invalid JSON ({error})") from error
    valid_list = isinstance(loaded, list) and all(isinstance(name, str) for name in loaded)
    valid_dict = isinstance(loaded, dict) and all(
        isinstance(names, list) and all(isinstance(name, str) for name in names)
        for names in loaded.values()
    )
    if not (valid_list or valid_dict):
        raise models.ModelError(
            f"--classes {path}: expected a JSON list of names or {{head: [names]}}, "
            f"got {type(loaded).__name__}"
        )
    return loaded


def _index_names(count: int) -> list[str]:
    return [str(index) for index in range(count)]


def _counts(classes: Classes) -> int | dict[str, int]:
    if isinstance(classes, dict):
        return {head: len(names) for head, names in classes.items()}
    return len(classes)


def _default_classes(arch: str) -> int | dict[str, int]:
    with torch.device("meta"):
        return models.build(arch).num_classes


def describe(name: str) -> dict[str, object]:
    """Parameters and GFLOPs of model `name` at its default input (batch 1), built on meta."""
    with torch.device("meta"):
        model = models.build(name).eval()
        example = torch.empty(1, *model.input_shape)
        counter = FlopCounterMode(display=False)
        with counter:
            model(example)
    return {
        "name": name,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "gflops": counter.get_total_flops() / GIGA,
        "input_shape": list(model.input_shape),
    }


def describe_real(network: RealNetwork) -> dict[str, object]:
    """A real network's zoo row: its stage, input, size, licence, origin and a checked file."""
    entry = network.entry
    checked = network.path.is_file() and sha256_of(network.path) == entry["sha256"]
    parameters = None  # counted only in the file the manifest describes
    if checked:
        graph = onnx.load(str(network.path), load_external_data=False).graph
        parameters = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
    return {
        "name": network.name,
        "kind": "real",
        "task": f"{network.role}: {entry['task']}",
        "input": entry["inputs"][0]["shape"],
        "parameters": parameters,
        "licence": entry["licence"],
        "origin": entry["origin"],
        "file": str(network.path),
        "sha256_ok": checked,
    }


def _info(args: argparse.Namespace) -> int:
    known = models.names()
    real = {network.name: network for network in real_zoo(args.weights)}
    unknown = [name for name in args.names if name not in known and name not in real]
    if unknown:
        raise models.ModelError(f"unknown models {unknown}; known: {', '.join([*known, *real])}")
    wanted = args.names or [*known, *real]
    rows = [describe(name) for name in wanted if name in known]
    real_rows = [describe_real(real[name]) for name in wanted if name in real]
    if args.json:
        print(json.dumps(rows + real_rows, indent=2))
        return 0
    if rows:
        print(f"{'model':<14} {'params (M)':>11} {'GFLOPs':>9}  input (C,[T,]H,W)")
    for row in rows:
        shape = "x".join(map(str, row["input_shape"]))  # type: ignore[arg-type]
        print(f"{row['name']:<14} {row['parameters'] / MEGA:>11.2f} {row['gflops']:>9.2f}  {shape}")
    if real_rows:
        print(f"\nreal networks ({args.weights / 'manifest.json'}; make real-weights):")
    for row in real_rows:
        shape = "x".join(map(str, row["input"]))  # type: ignore[arg-type]
        size = "-" if row["parameters"] is None else f"{row['parameters'] / MEGA:.2f}M"
        check = "sha256 ok" if row["sha256_ok"] else "SHA256 MISMATCH OR MISSING"
        print(f"{row['name']:<28} {size:>8}  input {shape}  {row['licence']}  {check}")
        print(f"    {row['task']}")
        print(f"    {row['origin']}; {row['file']}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    classes = _read_classes(args.classes, _default_classes(args.arch))
    model = models.build(args.arch, num_classes=_counts(classes))
    report = models.load_checkpoint(model, args.source, args.layout, reinit_head=args.reinit_head)
    extra = {"source": args.source.name, "source_layout": report.layout}
    models.save_checkpoint(model, args.target, args.arch, classes, extra=extra)
    print(
        f"{args.target}: {args.arch} ({FORMAT}), {report.loaded} tensors from {args.source} "
        f"(layout {report.layout}), {len(report.reinitialised)} head tensors reinitialised"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    metadata = models.read_metadata(args.weights) if args.weights is not None else {}
    if metadata.get("format") == FORMAT:
        if metadata.get("arch") != args.arch:
            raise models.ModelError(
                f"--weights {args.weights} holds a {metadata.get('arch')}, "
                f"but {args.arch} was asked for"
            )
        model, _ = models.build_from_checkpoint(args.weights)
    else:
        classes = _read_classes(args.classes, _default_classes(args.arch))
        model = models.build(args.arch, num_classes=_counts(classes))
        if args.weights is not None:
            models.load_checkpoint(model, args.weights, args.layout, reinit_head=args.reinit_head)
    model.eval()
    example = torch.zeros(1, *model.input_shape)
    path = export_onnx(model, example, args.target, name=args.arch)
    print(f"{path}: {args.arch}, input 1x{'x'.join(map(str, model.input_shape))} (dynamic batch)")
    return 0
