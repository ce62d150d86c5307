"""The engine interface: run one network on a batch, numpy in, named float32 numpy out.

Every backend (torch, ONNX Runtime, TensorRT) returns the same thing, a dict of named outputs in
the network's output order, so callers never care which backend ran. Names follow one rule, shared
with the ONNX exporter so a torch model and its exported file agree:

- a single tensor output is named `output`;
- a tuple or list of tensors is named `output_0`, `output_1`, ...;
- a dict of tensors keeps its keys (e.g. the CSN multi-head `{"video": ..., "head": ...}`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Literal, Self, TypeVar

import numpy as np

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")

SINGLE_OUTPUT_NAME = "output"
INDEXED_OUTPUT_PREFIX = "output_"

T = TypeVar("T")


class EngineError(Exception):
    """An engine could not be built, loaded or run (bad model file, device, input or backend)."""


def named_outputs(outputs: T | tuple[T, ...] | list[T] | Mapping[str, T]) -> dict[str, T]:
    """Name a network's raw outputs by the module's naming rule.

    Args:
        outputs: what a model's `forward` returned: one tensor, a tuple/list of tensors or a
            mapping of name to tensor. Nested containers are not supported.

    Returns:
        An insertion-ordered dict of name to output.

    Raises:
        EngineError: for an empty container or a nested one.
    """
    if isinstance(outputs, Mapping):
        named = {str(key): value for key, value in outputs.items()}
    elif isinstance(outputs, tuple | list):
        named = {f"{INDEXED_OUTPUT_PREFIX}{index}": value for index, value in enumerate(outputs)}
    else:
        return {SINGLE_OUTPUT_NAME: outputs}
    if not named:
        raise EngineError("model returned an empty container; expected at least one output")
    nested = [name for name, value in named.items() if isinstance(value, Mapping | tuple | list)]
    if nested:
        raise EngineError(f"nested outputs are not supported; got containers at {nested}")
    return named


def check_batch(inputs: object, engine_name: str) -> np.ndarray:
    """Check that `inputs` is a numeric ndarray with a batch axis; returns it unchanged.

    Raises:
        EngineError: naming `engine_name`, the expected and the actual type or rank.
    """
    if not isinstance(inputs, np.ndarray):
        raise EngineError(f"{engine_name}: expected a numpy array, got {type(inputs).__name__}")
    if inputs.ndim < 1 or inputs.shape[0] < 1:
        raise EngineError(
            f"{engine_name}: expected a batch of shape (N>=1, ...), got shape {inputs.shape}"
        )
    if not np.issubdtype(inputs.dtype, np.number):
        raise EngineError(f"{engine_name}: expected a numeric array, got dtype {inputs.dtype}")
    return inputs


def run_one_by_one(
    run_one: Callable[[np.ndarray], dict[str, np.ndarray]], inputs: np.ndarray
) -> dict[str, np.ndarray]:
    """Run a network whose graph fixes the batch axis at 1 on a batch (N, ...), one sample a call.

    Some shipped files (the MoveNet ONNX models) were exported with batch 1; a batch of N still
    goes through one `Engine.run`, as N runs whose outputs are concatenated along axis 0.
    """
    outputs = [run_one(inputs[index : index + 1]) for index in range(inputs.shape[0])]
    return {name: np.concatenate([out[name] for out in outputs]) for name in outputs[0]}


class Engine(abc.ABC):
    """Runs one network on a batch.

    Contract: `run(inputs)` takes an array of shape (N, ...) (float32 is the normal dtype; each
    backend casts to what the network expects) and returns `{name: float32 array (N, ...)}` in the
    network's output order. Engines can be used as context managers; `close()` releases the
    backend's resources and is safe to call twice.
    """

    input_name: str
    device: str
    precision: Precision

    @property
    @abc.abstractmethod
    def output_names(self) -> tuple[str, ...]:
        """Output names in order (see the module docstring for the naming rule)."""

    @abc.abstractmethod
    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the network on a batch (N, ...); returns float32 outputs (N, ...) by name."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the backend's resources; the engine cannot run afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input={self.input_name!r}, outputs={list(self.output_names)},"
            f" device={self.device!r}, precision={self.precision!r})"
        )
