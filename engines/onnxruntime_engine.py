"""Run an ONNX file with ONNX Runtime as an `Engine` (CPU provider, CUDA provider where present).

Thread settings default to what a 2-core machine shared with a GStreamer pipeline wants: two
intra-op threads, one inter-op thread, and no busy-spinning of idle pool threads (spinning would
steal the cores the pipeline's other stages need). `InferenceSession.run` releases the GIL and is
safe to call from several threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from engines.base import Engine, EngineError, Precision, check_batch, run_one_by_one

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
DEFAULT_PROVIDERS = (CUDA_PROVIDER, CPU_PROVIDER)
DEFAULT_INTRA_OP_THREADS = 2
DEFAULT_INTER_OP_THREADS = 1
# ONNX tensor element type -> numpy dtype the input is cast to, and the precision it implies.
# int32 inputs are images in 0..255 that the graph normalises itself (the MoveNet models).
ONNX_INPUT_TYPES: dict[str, tuple[type[np.number], Precision]] = {
    "tensor(float)": (np.float32, "fp32"),
    "tensor(float16)": (np.float16, "fp16"),
    "tensor(int32)": (np.int32, "fp32"),
}


class OnnxRuntimeEngine(Engine):
    """Runs an ONNX model with one input through ONNX Runtime.

    Args:
        path: the `.onnx` file.
        providers: execution providers in order of preference; `None` means CUDA then CPU, keeping
            only those this onnxruntime build has.
        intra_op_threads: threads inside one operator; 0 lets ONNX Runtime pick (one per core).
        inter_op_threads: threads across independent operators.
        allow_spinning: let idle pool threads busy-wait (lower latency on a dedicated machine).

    Raises:
        EngineError: missing file, unloadable model, no usable provider, not exactly one input,
            or an input type other than float32/float16/int32.

    A graph whose batch axis is fixed at 1 runs a batch of N as N runs inside one `run`.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = DEFAULT_INTRA_OP_THREADS,
        inter_op_threads: int = DEFAULT_INTER_OP_THREADS,
        allow_spinning: bool = False,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise EngineError(f"OnnxRuntimeEngine: ONNX file {str(path)!r} does not exist")
        available = ort.get_available_providers()
        wanted = DEFAULT_PROVIDERS if providers is None else tuple(providers)
        chosen = [name for name in wanted if name in available]
        if not chosen:
            raise EngineError(
                f"OnnxRuntimeEngine: none of the providers {list(wanted)} is available;"
                f" available: {available}"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spinning = "1" if allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as error:  # onnxruntime raises its own pybind classes
            raise EngineError(f"OnnxRuntimeEngine: cannot load {str(path)!r}: {error}") from error
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise EngineError(
                f"OnnxRuntimeEngine: {path.name} must have exactly 1 input,"
                f" got {len(inputs)}: {[i.name for i in inputs]}"
            )
        if inputs[0].type not in ONNX_INPUT_TYPES:
            raise EngineError(
                f"OnnxRuntimeEngine: {path.name} input {inputs[0].name!r} must be one of"
                f" {list(ONNX_INPUT_TYPES)}, got {inputs[0].type}"
            )
        self._session: ort.InferenceSession | None = session
        self._input_dtype, self.precision = ONNX_INPUT_TYPES[inputs[0].type]
        self.input_name = inputs[0].name
        self.batch_of_one = inputs[0].shape[0] == 1
        self._output_names = tuple(output.name for output in session.get_outputs())
        self.device = "cuda" if session.get_providers()[0] == CUDA_PROVIDER else "cpu"
        self.path = path
        log.debug(
            "OnnxRuntimeEngine %s on %s (%s), outputs %s",
            path.name,
            self.device,
            session.get_providers(),
            self._output_names,
        )

    @property
    def output_names(self) -> tuple[str, ...]:
        """The ONNX graph's output names in order."""
        return self._output_names

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a batch (N, ...); returns float32 outputs (N, ...) by name."""
        if self._session is None:
            raise EngineError(f"OnnxRuntimeEngine: run() on {self.path.name} after close()")
        check_batch(inputs, "OnnxRuntimeEngine")
        if self.batch_of_one and inputs.shape[0] > 1:
            return run_one_by_one(self.run, inputs)
        feed = {self.input_name: np.ascontiguousarray(inputs, dtype=self._input_dtype)}
        try:
            outputs = self._session.run(None, feed)
        except Exception as error:  # onnxruntime raises its own pybind classes
            raise EngineError(
                f"OnnxRuntimeEngine: {self.path.name} failed on input shape {inputs.shape}: {error}"
            ) from error
        return {
            name: np.asarray(output, dtype=np.float32)
            for name, output in zip(self._output_names, outputs, strict=True)
        }

    def close(self) -> None:
        """Release the session."""
        self._session = None
