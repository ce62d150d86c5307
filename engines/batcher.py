"""A micro-batcher: many threads submit single samples, one worker runs them as batches.

Each stream's element calls `submit(sample)` and gets a `concurrent.futures.Future`; the worker
takes the oldest request, waits at most `max_wait_ms` (counted from that request's submission) for
more requests of the same shape and dtype, stacks up to `max_batch` of them along a new axis 0,
calls `engine_fn` once and hands each caller its own slice of the outputs. torch and ONNX Runtime
release the GIL while they run, so one batched call serves all streams.

Guarantees:
- every accepted request's future is resolved exactly once, with its own result;
- requests of different shapes (or dtypes) never share a batch;
- a failing `engine_fn` call fails exactly the futures of that batch (`set_exception` with the
  raised exception); the worker carries on;
- the queue is bounded: `submit` blocks while it is full, up to `timeout` seconds, then raises
  `BatcherFull` (`timeout=0` never blocks: the live mode's drop-and-count policy);
- `close()` stops accepting work, wakes producers blocked on a full queue (they raise
  `BatcherClosed`, nobody joins them), runs every request already queued, then stops the worker
  with a sentinel.

Example:
    with MicroBatcher(engine.run, max_batch=8, name="pose") as batcher:
        future = batcher.submit(crop_chw)           # (C, H, W) float32
        heatmaps = future.result()["output"]        # (K, H/4, W/4): the batch axis removed
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

import numpy as np

from engines.base import EngineError

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_MS = 5.0
DEFAULT_QUEUE_SIZE = 256
MS_PER_S = 1000.0

# What `engine_fn` returns for a batch: an array (N, ...), a tuple/list of them or a mapping of
# name to array; each request receives the same structure with the batch axis removed.
BatchOutputs = np.ndarray | tuple[np.ndarray, ...] | list[np.ndarray] | Mapping[str, np.ndarray]


class BatcherClosed(EngineError):
    """`submit` after (or during) `close()`."""


class BatcherFull(EngineError):
    """The request queue stayed full for the whole submit timeout."""


@dataclass
class _Request:
    """One submitted sample and the future its caller holds."""

    sample: np.ndarray
    future: Future
    submitted_at: float

    @property
    def key(self) -> tuple[tuple[int, ...], np.dtype]:
        """Requests with equal keys may share a batch."""
        return self.sample.shape, self.sample.dtype


_STOP = object()  # the sentinel `close()` appends after the last accepted request


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot of the batcher's counters (for metrics).

    Attributes:
        submitted: requests accepted by `submit`.
        rejected: `submit` calls that raised BatcherFull or BatcherClosed.
        batches: `engine_fn` calls made.
        items: requests that went through `engine_fn` calls.
        failed_batches: `engine_fn` calls that raised or returned unsplittable outputs.
        batch_sizes: batch size -> number of batches of that size.
        pending: requests queued now.
    """

    submitted: int
    rejected: int
    batches: int
    items: int
    failed_batches: int
    batch_sizes: dict[int, int] = field(default_factory=dict)
    pending: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Average requests per `engine_fn` call (0.0 before the first)."""
        return self.items / self.batches if self.batches else 0.0


def _split(outputs: Any, batch_size: int) -> list[Any]:
    """Split batch outputs into `batch_size` per-request outputs without the batch axis.

    Raises:
        EngineError: an output that is not an array with `batch_size` rows.
    """
    if isinstance(outputs, Mapping):
        per_key = {key: _split(value, batch_size) for key, value in outputs.items()}
        return [{key: parts[row] for key, parts in per_key.items()} for row in range(batch_size)]
    if isinstance(outputs, tuple | list):
        per_item = [_split(value, batch_size) for value in outputs]
        return [type(outputs)(parts[row] for parts in per_item) for row in range(batch_size)]
    if not isinstance(outputs, np.ndarray) or outputs.ndim == 0 or len(outputs) != batch_size:
        shape = getattr(outputs, "shape", type(outputs).__name__)
        raise EngineError(
            f"batch output must be an array with {batch_size} rows on axis 0, got {shape}"
        )
    return list(outputs)


class MicroBatcher:
    """Coalesces single-sample requests from many threads into batched `engine_fn` calls.

    Args:
        engine_fn: runs a batch (N, ...) stacked from the samples; returns `BatchOutputs`
            (e.g. `Engine.run`).
        max_batch: most requests per call (at least 1).
        max_wait_ms: longest wait for companions after a batch's first request was submitted.
        queue_size: most requests waiting; `submit` blocks beyond it (see the module docstring).
        name: for logs and the worker thread's name.
    """

    def __init__(
        self,
        engine_fn: Callable[[np.ndarray], BatchOutputs],
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        name: str = "batcher",
    ) -> None:
        if max_batch < 1:
            raise EngineError(f"batcher {name!r}: max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise EngineError(f"batcher {name!r}: max_wait_ms must be >= 0, got {max_wait_ms}")
        if queue_size < 1:
            raise EngineError(f"batcher {name!r}: queue_size must be >= 1, got {queue_size}")
        self.name = name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / MS_PER_S
        self.queue_size = queue_size
        self._engine_fn = engine_fn
        self._pending: collections.deque[_Request | object] = collections.deque()
        self._condition = threading.Condition()
        self._closed = False
        self._submitted = 0
        self._rejected = 0
        self._batches = 0
        self._items = 0
        self._failed_batches = 0
        self._batch_sizes: collections.Counter[int] = collections.Counter()
        self._worker = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        self._worker.start()

    def submit(self, sample: np.ndarray, timeout: float | None = None) -> Future:
        """Queue one sample (no batch axis); returns a future of its outputs (no batch axis).

        Args:
            sample: one input, e.g. (C, H, W) or (C, T, H, W).
            timeout: seconds to wait while the queue is full; None waits until there is room
                or the batcher closes, 0 never waits.

        Raises:
            BatcherFull: the queue stayed full for `timeout` seconds.
            BatcherClosed: the batcher is closed or closes while waiting.
        """
        sample = np.asarray(sample)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._closed and len(self._pending) >= self.queue_size:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._rejected += 1
                    raise BatcherFull(
                        f"batcher {self.name!r}: queue full ({self.queue_size} requests)"
                        f" for {timeout} s"
                    )
                self._condition.wait(remaining)
            if self._closed:
                self._rejected += 1
                raise BatcherClosed(f"batcher {self.name!r} is closed")
            future: Future = Future()
            self._pending.append(_Request(sample, future, time.monotonic()))
            self._submitted += 1
            self._condition.notify_all()
        return future

    def stats(self) -> BatcherStats:
        """A consistent snapshot of the counters."""
        with self._condition:
            return BatcherStats(
                submitted=self._submitted,
                rejected=self._rejected,
                batches=self._batches,
                items=self._items,
                failed_batches=self._failed_batches,
                batch_sizes=dict(self._batch_sizes),
                pending=sum(1 for item in self._pending if item is not _STOP),
            )

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting work, run what is queued, stop the worker; idempotent.

        Args:
            timeout: seconds to wait for the worker to finish the queued work; None waits.
        """
        with self._condition:
            if not self._closed:
                self._closed = True
                self._pending.append(_STOP)
                self._condition.notify_all()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)
            if self._worker.is_alive():
                log.warning("batcher %s: worker still busy after %s s", self.name, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _next_batch(self) -> list[_Request] | None:
        """Block until a batch is due; returns it, or None when the sentinel is reached."""
        with self._condition:
            while not self._pending:
                self._condition.wait()
            first = self._pending.popleft()
            if first is _STOP:
                return None
            batch = [cast(_Request, first)]  # the deque holds requests and the one sentinel
            deadline = batch[0].submitted_at + self.max_wait_s
            while len(batch) < self.max_batch:
                self._take_matching(batch)
                self._condition.notify_all()  # room in the queue for blocked producers
                stopping = bool(self._pending) and self._pending[-1] is _STOP
                remaining = deadline - time.monotonic()
                if len(batch) >= self.max_batch or stopping or remaining <= 0:
                    break
                self._condition.wait(remaining)
            self._condition.notify_all()
            return batch

    def _take_matching(self, batch: list[_Request]) -> None:
        """Move queued requests with the batch's shape and dtype into `batch`, oldest first."""
        key = batch[0].key
        kept: collections.deque[_Request | object] = collections.deque()
        while self._pending:
            item = self._pending.popleft()
            if len(batch) < self.max_batch and isinstance(item, _Request) and item.key == key:
                batch.append(item)
            else:
                kept.append(item)
        self._pending = kept

    def _work(self) -> None:
        """The worker loop: run batches until the sentinel."""
        while (batch := self._next_batch()) is not None:
            self._run(batch)
        log.debug("batcher %s stopped", self.name)

    def _run(self, batch: list[_Request]) -> None:
        """Run one batch and resolve its futures; never raises."""
        live = [request for request in batch if request.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            outputs = self._engine_fn(np.stack([request.sample for request in live]))
            results = _split(outputs, len(live))
        except Exception as error:
            log.warning("batcher %s: batch of %d failed: %s", self.name, len(live), error)
            for request in live:
                request.future.set_exception(error)
            failed = 1
        else:
            for request, result in zip(live, results, strict=True):
                request.future.set_result(result)
            failed = 0
        with self._condition:
            self._batches += 1
            self._items += len(live)
            self._failed_batches += failed
            self._batch_sizes[len(live)] += 1
