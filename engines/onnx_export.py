"""Export a torch model to ONNX with a dynamic batch axis on the input and every output.

The TorchScript-based exporter (`dynamo=False`) is the default: on the conv nets here (dilated
convs, depthwise 3-D convs, ModuleDict heads returning a dict) it exports at the requested opset,
in a fraction of a second for the small variants, and its files match torch within 1e-6 relative in
ONNX Runtime. torch 2.13 marks it deprecated; `dynamo=True` selects the `torch.export`-based
exporter instead (opset 18 or newer, since it has no lower-opset implementations).

Output names follow `engines.base.named_outputs`, so `TorchEngine` and `OnnxRuntimeEngine` return
the same keys for the same model.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from engines.base import EngineError, named_outputs

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_DYNAMO_OPSET = 18
BATCH_AXIS_NAME = "batch"
# A batch-1 example is repeated to this size so tracing cannot bake batch == 1 into the graph.
MIN_TRACE_BATCH = 2


def _trace_example(example: torch.Tensor) -> torch.Tensor:
    """`example` (N, ...) with at least `MIN_TRACE_BATCH` samples (repeats of the first)."""
    if example.shape[0] >= MIN_TRACE_BATCH:
        return example
    return example[:1].expand(MIN_TRACE_BATCH, *example.shape[1:]).contiguous()


def _check_dynamic_batch(path: Path, model_name: str) -> None:
    """Raise EngineError unless every graph input and output has a symbolic axis 0."""
    graph = onnx.load(str(path), load_external_data=False).graph
    static = [
        value.name
        for value in (*graph.input, *graph.output)
        if not (dims := value.type.tensor_type.shape.dim) or not dims[0].dim_param
    ]
    if static:
        raise EngineError(
            f"export of {model_name}: expected a dynamic batch axis on every input and output,"
            f" but {static} have a fixed axis 0"
        )


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    input_name: str = "input",
    opset: int = DEFAULT_OPSET,
    dynamo: bool = False,
    name: str | None = None,
) -> Path:
    """Export `model` (in eval mode) to an ONNX file with a dynamic batch axis.

    Args:
        model: the network; it is switched to eval mode. Its forward takes one tensor and returns
            a tensor, a tuple of tensors or a dict of tensors.
        example: an input of shape (N, ...) on the model's device, used for tracing; its
            per-sample shape is fixed in the graph, its batch axis is not.
        path: the `.onnx` file to write; parent folders are created.
        input_name: the graph's input name.
        opset: ONNX opset version.
        dynamo: use the `torch.export`-based exporter (needs `opset >= 18`).
        name: the model's name for messages; defaults to its class name.

    Returns:
        `path` as a Path.

    Raises:
        EngineError: naming the model, when the forward pass, the export or the check fails.
    """
    model_name = name or type(model).__name__
    path = Path(path)
    if dynamo and opset < MIN_DYNAMO_OPSET:
        raise EngineError(
            f"export of {model_name}: the dynamo exporter needs opset >= {MIN_DYNAMO_OPSET},"
            f" got {opset}"
        )
    model.eval()
    trace_input = _trace_example(example)
    try:
        with torch.inference_mode():
            output_names = list(named_outputs(model(trace_input)))
    except Exception as error:
        raise EngineError(
            f"export of {model_name}: forward pass on {tuple(example.shape)} failed: {error}"
        ) from error
    path.parent.mkdir(parents=True, exist_ok=True)
    if dynamo:
        axes: dict[str, object] = {
            "dynamic_shapes": ({0: torch.export.Dim(BATCH_AXIS_NAME, min=1)},)
        }
    else:
        axes = {
            "dynamic_axes": {
                axis_name: {0: BATCH_AXIS_NAME} for axis_name in (input_name, *output_names)
            }
        }
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter's own deprecation notices, documented above.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (trace_input,),
                str(path),
                input_names=[input_name],
                output_names=output_names,
                opset_version=opset,
                dynamo=dynamo,
                verbose=False,
                **axes,
            )
        onnx.checker.check_model(str(path))
    except Exception as error:
        raise EngineError(f"export of {model_name} to {str(path)!r} failed: {error}") from error
    _check_dynamic_batch(path, model_name)
    log.info(
        "exported %s to %s (opset %d, outputs %s)", model_name, path, opset, ", ".join(output_names)
    )
    return path
