"""``run.py ship --from out/weights --to weights --train data/train``: the shipped weights.

Copies each trained network (``<from>/<name>/*.safetensors``) to ``<to>/<name>.safetensors``, fits
the prior table on the training split (``prior.json``, for the ablation without the part-label
transform) and writes ``manifest.json``: per network its architecture, size, checksum, training
config, data seed and validation metrics, plus the code commit. `make weights` ends with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from models import read_metadata
from pipeline.config import ConfigError
from tps.formats import read_gt
from tps.labels import PriorTable

NETWORKS = ("person", "pose", "parts", "csn_ir", "csn_ip", "refiner_fine")
MAX_TOTAL_BYTES = 40 * 1024 * 1024
"""The shipped weights must stay small enough to live in the repository."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ship", help="collect trained weights into weights/")
    parser.add_argument("--from", dest="source", type=Path, default=Path("out/weights"))
    parser.add_argument("--to", type=Path, default=Path("weights"))
    parser.add_argument("--train", type=Path, default=Path("data/train"), help="training split")
    parser.set_defaults(handler=handle)


def _commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or "unknown"


def _trained(source: Path, name: str) -> Path:
    found = sorted((source / name).glob("*.safetensors"))
    if len(found) != 1:
        raise ConfigError(f"{source / name}: expected one trained .safetensors, found {len(found)}")
    return found[0]


def handle(args: argparse.Namespace) -> int:
    args.to.mkdir(parents=True, exist_ok=True)
    networks = {}
    for name in NETWORKS:
        trained = _trained(args.source, name)
        target = args.to / f"{name}.safetensors"
        shutil.copyfile(trained, target)
        metadata = read_metadata(target)
        networks[name] = {
            "file": target.name,
            "arch": metadata["arch"],
            "bytes": target.stat().st_size,
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "input_shape": json.loads(metadata.get("input_shape", "null")),
            "config": json.loads(metadata.get("config", "null")),
            "data_seed": json.loads(metadata.get("data_seed", "null")),
            "metrics": json.loads(metadata.get("metrics", "null")),
        }
    train = read_gt(args.train)
    PriorTable.fit(train).save(args.to / "prior.json")
    total = sum(network["bytes"] for network in networks.values())
    if total > MAX_TOTAL_BYTES:
        raise ConfigError(f"weights total {total} bytes, more than {MAX_TOTAL_BYTES}")
    manifest_path = args.to / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest = {
        "code_commit": _commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "train_split": {"path": str(args.train), "videos": len(train.labels)},
        "total_bytes": total,
        "networks": networks,
    }
    if "real" in previous:  # the converted real set (make real-weights) is not ours to rewrite
        manifest["real"] = previous["real"]
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"shipped {len(networks)} networks ({total / 1e6:.1f} MB) and prior.json to {args.to}")
    return 0
