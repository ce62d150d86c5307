"""Run an ONNX model through TensorRT 10 as an `Engine` (FP32, FP16 or INT8), with a plan cache.

Building a plan takes minutes for the paper-size models, so the serialized plan is cached on disk,
keyed by sha256 of the ONNX bytes, the TensorRT version, the GPU name, the batch shape profile and
the precision; any change to one of them builds a new plan. INT8 uses entropy calibration
(`IInt8EntropyCalibrator2`) fed by a callable that yields calibration batches; its calibration
table is cached next to the plan (delete it, or use another `cache_dir`, after changing the
calibration data).

Buffers are torch CUDA tensors and execution uses the tensor-address API (`set_input_shape`,
`set_tensor_address`, `execute_async_v3`) on the engine's own CUDA stream. `tensorrt` is imported
when an engine is created, so this module imports on machines without it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.base import Engine, EngineError, Precision, check_batch, run_one_by_one

log = logging.getLogger(__name__)

ShapeProfile = tuple[int, int, int]  # (min, opt, max) batch sizes
CalibrationBatches = Callable[[], Iterable[np.ndarray]]  # yields float32 (N, ...) batches

DEFAULT_CACHE_DIR = Path("~/.cache/tps_parser/tensorrt")
DEFAULT_SHAPE_PROFILE: ShapeProfile = (1, 4, 8)
DEFAULT_WORKSPACE_BYTES = 4 << 30
TENSORRT_PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")
PLAN_SUFFIX = ".plan"
CALIBRATION_SUFFIX = ".calib"
CACHE_KEY_CHARS = 16  # hex characters of the cache key kept in file names


def plan_cache_key(
    onnx_bytes: bytes,
    tensorrt_version: str,
    gpu_name: str,
    shape_profile: ShapeProfile,
    precision: str,
) -> str:
    """The hex sha256 that names a cached plan; it changes when any argument changes."""
    digest = hashlib.sha256(hashlib.sha256(onnx_bytes).digest())
    profile = "x".join(str(size) for size in shape_profile)
    for part in (tensorrt_version, gpu_name, profile, precision):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def check_shape_profile(shape_profile: tuple[int, ...]) -> ShapeProfile:
    """Validate a (min, opt, max) batch profile: three integers with 1 <= min <= opt <= max."""
    if len(shape_profile) != 3 or not all(isinstance(size, int) for size in shape_profile):
        raise EngineError(
            f"TensorRTEngine: shape_profile must be 3 ints (min, opt, max), got {shape_profile}"
        )
    low, opt, high = shape_profile
    if not 1 <= low <= opt <= high:
        raise EngineError(
            f"TensorRTEngine: shape_profile must satisfy 1 <= min <= opt <= max,"
            f" got {shape_profile}"
        )
    return low, opt, high


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file so readers never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _import_tensorrt() -> Any:
    """The `tensorrt` module, or EngineError saying why it is unusable here."""
    try:
        import tensorrt
    except ImportError as error:
        raise EngineError(f"TensorRTEngine: tensorrt not importable: {error}") from error
    if not torch.cuda.is_available():
        raise EngineError("TensorRTEngine: CUDA not available")
    return tensorrt


def _torch_dtype(trt: Any, trt_dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT I/O tensor type."""
    dtypes = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.bfloat16: torch.bfloat16,
        trt.int8: torch.int8,
        trt.int32: torch.int32,
        trt.int64: torch.int64,
        trt.bool: torch.bool,
    }
    if trt_dtype not in dtypes:
        raise EngineError(f"TensorRTEngine: unsupported I/O tensor type {trt_dtype}")
    return dtypes[trt_dtype]


def _entropy_calibrator(
    trt: Any,
    batches: CalibrationBatches | None,
    cache_path: Path,
    default_batch_size: int,
    device: torch.device,
) -> Any:
    """An `IInt8EntropyCalibrator2` that feeds `batches()` to the builder, one GPU copy at a time.

    Every batch must have the shape (N, ...) of the first; the calibration table is read from and
    written to `cache_path`. With `batches=None` only a cached table can calibrate, and the batch
    size reported is `default_batch_size`.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches: Iterator[np.ndarray] = iter(() if batches is None else batches())
            first = next(self._batches, None)
            if batches is not None and first is None:
                raise EngineError("TensorRTEngine: the INT8 calibration callable yielded nothing")
            self._pending = None if first is None else np.ascontiguousarray(first, np.float32)
            self._shape = None if first is None else self._pending.shape
            self._device_batch: torch.Tensor | None = None  # alive until the next get_batch

        def get_batch_size(self) -> int:
            return default_batch_size if self._shape is None else int(self._shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch, self._pending = self._pending, None
            if batch is None:
                batch = next(self._batches, None)
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch, dtype=np.float32)
            if batch.shape != self._shape:
                log.error(
                    "calibration batch shape %s differs from the first %s; stopping calibration",
                    batch.shape,
                    self._shape,
                )
                return None
            self._device_batch = torch.from_numpy(batch).to(device)
            return [int(self._device_batch.data_ptr())] * len(names)

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            _write_atomically(cache_path, bytes(cache))

    return EntropyCalibrator()


class TensorRTEngine(Engine):
    """Runs an ONNX model (one input, dynamic batch axis) as a TensorRT 10 plan.

    Args:
        onnx_path: the ONNX file (e.g. from `engines.onnx_export.export_onnx`).
        precision: `fp32`, `fp16` (FP16 kernels allowed; I/O stays float32) or `int8` (INT8 with
            FP16 fallback; needs `calibrator` unless a calibration table is cached).
        calibrator: for INT8, a callable returning an iterable of float32 batches (N, ...), all of
            one shape, drawn from real inputs.
        cache_dir: where plans and calibration tables are kept (created if missing).
        shape_profile: (min, opt, max) batch sizes the plan accepts; it is tuned for `opt`.
            (1, 1, 1) for a graph that fixes the batch axis at 1: a batch of N then runs as N
            runs inside one `run`.
        workspace_bytes: the builder's workspace memory limit.
        device: the CUDA device the plan runs on.

    Raises:
        EngineError: bad arguments, no tensorrt or CUDA, an ONNX the parser rejects, a failed
            build, or a plan that does not have exactly one input.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        precision: Precision = "fp16",
        calibrator: CalibrationBatches | None = None,
        cache_dir: str | Path = DEFAULT_CACHE_DIR,
        shape_profile: tuple[int, int, int] = DEFAULT_SHAPE_PROFILE,
        workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
        device: str = "cuda",
    ) -> None:
        onnx_path = Path(onnx_path)
        if precision not in TENSORRT_PRECISIONS:
            raise EngineError(
                f"TensorRTEngine: precision must be one of {TENSORRT_PRECISIONS}, got {precision!r}"
            )
        self.shape_profile = check_shape_profile(tuple(shape_profile))
        if not onnx_path.is_file():
            raise EngineError(f"TensorRTEngine: ONNX file {str(onnx_path)!r} does not exist")
        trt = _import_tensorrt()
        self._trt = trt
        self._torch_device = torch.device(device)
        self.device = str(self._torch_device)
        self.precision = precision
        self.path = onnx_path
        self._lock = threading.Lock()  # an execution context runs one batch at a time
        with torch.cuda.device(self._torch_device):
            self._stream = torch.cuda.Stream()
            gpu_name = torch.cuda.get_device_name(self._torch_device)
        onnx_bytes = onnx_path.read_bytes()
        key = plan_cache_key(onnx_bytes, trt.__version__, gpu_name, self.shape_profile, precision)
        cache_dir = Path(cache_dir).expanduser()
        cache_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{onnx_path.stem}-{precision}-{key[:CACHE_KEY_CHARS]}"
        plan_path = cache_dir / f"{stem}{PLAN_SUFFIX}"
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._load_plan(plan_path)
        if self._engine is None:
            plan = self._build_plan(
                calibrator, cache_dir / f"{stem}{CALIBRATION_SUFFIX}", workspace_bytes
            )
            _write_atomically(plan_path, plan)
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise EngineError(
                    f"TensorRTEngine: cannot deserialize the plan just built for {stem}"
                )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise EngineError(f"TensorRTEngine: {onnx_path.name} must have 1 input, got {inputs}")
        self.input_name = inputs[0]
        self._output_names = tuple(n for n in names if n != self.input_name)
        self._dtypes = {n: _torch_dtype(trt, self._engine.get_tensor_dtype(n)) for n in names}
        log.info("TensorRT engine %s ready (%s, batch %s)", stem, precision, self.shape_profile)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The plan's output names in order (the ONNX graph's output names)."""
        return self._output_names

    def _load_plan(self, plan_path: Path) -> Any | None:
        """Deserialize a cached plan; None when there is none or it no longer loads."""
        if not plan_path.is_file():
            return None
        engine = self._runtime.deserialize_cuda_engine(plan_path.read_bytes())
        if engine is None:
            log.warning("cached TensorRT plan %s does not load; rebuilding", plan_path)
        else:
            log.info("loaded cached TensorRT plan %s", plan_path)
        return engine

    def _build_plan(
        self, calibrator: CalibrationBatches | None, calibration_path: Path, workspace_bytes: int
    ) -> bytes:
        """Parse the ONNX file and build a serialized plan with the precision and batch profile."""
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10 networks are always explicit-batch
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(self.path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineError(f"TensorRTEngine: cannot parse {self.path.name}: {errors}")
        if network.num_inputs != 1:
            raise EngineError(
                f"TensorRTEngine: {self.path.name} must have 1 input, got {network.num_inputs}"
            )
        network_input = network.get_input(0)
        sample_shape = tuple(network_input.shape)[1:]
        if any(size < 1 for size in sample_shape):
            raise EngineError(
                f"TensorRTEngine: only the batch axis may be dynamic; input {network_input.name!r}"
                f" has shape {tuple(network_input.shape)}"
            )
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
        if self.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        low, opt, high = self.shape_profile
        profile.set_shape(
            network_input.name, (low, *sample_shape), (opt, *sample_shape), (high, *sample_shape)
        )
        config.add_optimization_profile(profile)
        if self.precision == "int8":
            if calibrator is None and not calibration_path.is_file():
                raise EngineError(
                    "TensorRTEngine: int8 needs a calibrator (no cached calibration table at"
                    f" {calibration_path})"
                )
            entropy = _entropy_calibrator(
                trt, calibrator, calibration_path, opt, self._torch_device
            )
            calibration_batch = (entropy.get_batch_size(), *sample_shape)
            calibration_profile = builder.create_optimization_profile()
            calibration_profile.set_shape(
                network_input.name, calibration_batch, calibration_batch, calibration_batch
            )
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = entropy
            config.set_calibration_profile(calibration_profile)
        log.info(
            "building TensorRT %s plan for %s (batch %s); this can take minutes",
            self.precision,
            self.path.name,
            self.shape_profile,
        )
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineError(
                f"TensorRTEngine: building the {self.precision} plan for {self.path.name} failed"
                " (see the TensorRT log above)"
            )
        return bytes(serialized)

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run the plan on a batch (N, ...) with min <= N <= max; returns float32 outputs."""
        check_batch(inputs, "TensorRTEngine")
        low, _, high = self.shape_profile
        if high == 1 < inputs.shape[0]:  # a plan for batch 1 (a graph that fixes it) runs N times
            return run_one_by_one(self.run, inputs)
        if not low <= inputs.shape[0] <= high:
            raise EngineError(
                f"TensorRTEngine: batch size must be in [{low}, {high}] for {self.path.name},"
                f" got {inputs.shape[0]}"
            )
        with self._lock, torch.cuda.device(self._torch_device), torch.cuda.stream(self._stream):
            if self._context is None:
                raise EngineError(f"TensorRTEngine: run() on {self.path.name} after close()")
            batch = torch.from_numpy(np.ascontiguousarray(inputs)).to(
                device=self._torch_device, dtype=self._dtypes[self.input_name]
            )
            if not self._context.set_input_shape(self.input_name, tuple(batch.shape)):
                raise EngineError(
                    f"TensorRTEngine: input shape {tuple(batch.shape)} rejected by the plan for"
                    f" {self.path.name}"
                )
            self._context.set_tensor_address(self.input_name, batch.data_ptr())
            outputs = {}
            for name in self._output_names:
                shape = tuple(self._context.get_tensor_shape(name))
                outputs[name] = torch.empty(
                    shape, dtype=self._dtypes[name], device=self._torch_device
                )
                self._context.set_tensor_address(name, outputs[name].data_ptr())
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise EngineError(f"TensorRTEngine: execution failed for {self.path.name}")
            results = {name: output.float().cpu() for name, output in outputs.items()}
            self._stream.synchronize()
        return {name: result.numpy() for name, result in results.items()}

    def close(self) -> None:
        """Release the execution context, the plan and the runtime."""
        with self._lock:
            self._context = None
            self._engine = None
            self._runtime = None
