"""The properties every network element shares (weights, engine, device, precision)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugins.element import Prop

NETWORK_PROPS: tuple[Prop, ...] = (
    Prop(
        "weights",
        str,
        None,
        "Checkpoint in our format (safetensors) or a real .onnx",
        required=True,
    ),
    Prop("engine", str, "torch", "Backend: torch, onnxruntime or tensorrt"),
    Prop("device", str, "cpu", "Torch device, e.g. cpu or cuda:0"),
    Prop("precision", str, "fp32", "fp32, fp16 or int8"),
    Prop("threads", int, 1, "ONNX Runtime threads per call (0: one per core)", minimum=0),
)


def network_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `parsing.settings.NetworkSettings` fields from an element's property values (weights
    None when unset, which only an element whose weights are optional lets through)."""
    return {
        "weights": Path(values["weights"]) if values["weights"] else None,
        "engine": values["engine"],
        "device": values["device"],
        "precision": values["precision"],
        "threads": values["threads"],
    }
