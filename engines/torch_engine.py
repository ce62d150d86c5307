"""Run a `torch.nn.Module` as an `Engine`: eval and inference mode, optional fp16, channels-last.

Example:
    engine = TorchEngine(models.registry.build("hrnet_tiny"), device="cpu")
    heatmaps = engine.run(np.zeros((2, 3, 256, 192), np.float32))["output"]  # (2, 17, 64, 48)
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from engines.base import Engine, EngineError, Precision, check_batch, named_outputs

log = logging.getLogger(__name__)

TORCH_DEVICE_TYPES = ("cpu", "cuda")
TORCH_PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16}
# Rank of a tensor -> the channels-last memory format for that rank (N,C,H,W and N,C,T,H,W).
CHANNELS_LAST_FORMATS: dict[int, torch.memory_format] = {
    4: torch.channels_last,
    5: torch.channels_last_3d,
}


def to_channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in channels-last layout if it is 4-D (N,H,W,C) or 5-D (N,T,H,W,C), else as is."""
    memory_format = CHANNELS_LAST_FORMATS.get(tensor.dim())
    return tensor if memory_format is None else tensor.contiguous(memory_format=memory_format)


def module_to_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4-D and 5-D parameter and buffer of `model` channels-last, in place."""
    for tensor in (*model.parameters(), *model.buffers()):
        tensor.data = to_channels_last(tensor.data)
    return model


class TorchEngine(Engine):
    """Runs a torch module on numpy batches.

    Args:
        model: the network; it is put in eval mode and moved to `device` (and to half precision for
            fp16). The engine owns it from then on.
        device: `cpu`, `cuda` or `cuda:N`.
        precision: `fp32`, or `fp16` (CUDA only: half-precision convolutions on CPU are slow and
            not what a deployment would run).
        channels_last: store 4-D/5-D weights and inputs channels-last (faster convolutions on
            tensor-core GPUs).
        input_name: name reported for the single input (matches the ONNX export's default).

    `output_names` is empty until the first `run`, since a module declares no outputs.
    """

    def __init__(
        self,
        model: nn.Module,
        device: str = "cpu",
        precision: Precision = "fp32",
        channels_last: bool = False,
        input_name: str = "input",
    ) -> None:
        try:
            torch_device = torch.device(device)
        except RuntimeError as error:
            raise EngineError(f"TorchEngine: invalid device {device!r}: {error}") from error
        if torch_device.type not in TORCH_DEVICE_TYPES:
            raise EngineError(
                f"TorchEngine: device type must be one of {TORCH_DEVICE_TYPES}, got {device!r}"
            )
        if torch_device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError(f"TorchEngine: device {device!r} requested but CUDA is not available")
        if precision not in TORCH_PRECISIONS:
            raise EngineError(
                f"TorchEngine: precision must be one of {tuple(TORCH_PRECISIONS)},"
                f" got {precision!r}"
            )
        if precision == "fp16" and torch_device.type != "cuda":
            raise EngineError(f"TorchEngine: fp16 needs a CUDA device, got {device!r}")
        self.input_name = input_name
        self.device = str(torch_device)
        self.precision = precision
        self._torch_device = torch_device
        self._dtype = TORCH_PRECISIONS[precision]
        self._channels_last = channels_last
        self._output_names: tuple[str, ...] = ()
        model = model.eval().to(device=torch_device, dtype=self._dtype)
        if channels_last:
            module_to_channels_last(model)
        self._model: nn.Module | None = model
        log.debug(
            "TorchEngine %s on %s, %s, channels_last=%s",
            type(model).__name__,
            self.device,
            precision,
            channels_last,
        )

    @property
    def output_names(self) -> tuple[str, ...]:
        """Output names in order; empty before the first `run`."""
        return self._output_names

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the module on a batch (N, ...); returns float32 numpy outputs (N, ...) by name."""
        if self._model is None:
            raise EngineError("TorchEngine: run() after close()")
        check_batch(inputs, "TorchEngine")
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(inputs)).to(
                device=self._torch_device, dtype=self._dtype, non_blocking=True
            )
            if self._channels_last:
                batch = to_channels_last(batch)
            outputs = named_outputs(self._model(batch))
            not_tensors = [name for name, out in outputs.items() if not torch.is_tensor(out)]
            if not_tensors:
                raise EngineError(f"TorchEngine: outputs {not_tensors} are not tensors")
            results = {
                name: output.detach().to(device="cpu", dtype=torch.float32).numpy()
                for name, output in outputs.items()
            }
        self._output_names = tuple(results)
        return results

    def close(self) -> None:
        """Drop the module (and, on CUDA, its cached memory)."""
        self._model = None
        if self._torch_device.type == "cuda":
            torch.cuda.empty_cache()
