"""MicroBatcher: results return to their own callers, batching, failures, bounded queue, close."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
import pytest

from engines import BatcherClosed, BatcherFull, EngineError, MicroBatcher

pytestmark = pytest.mark.timeout(60)

WAIT_S = 10.0  # generous bound on any wait on an event or future; tests normally take ms
SAMPLE_SHAPE = (2, 3)


def affine(batch: np.ndarray) -> dict[str, np.ndarray]:
    """A batch function whose per-sample results identify the sample: 2x+1 and the row sums."""
    return {"scaled": batch * 2 + 1, "total": batch.reshape(len(batch), -1).sum(axis=1)}


def sample(value: float, shape: tuple[int, ...] = SAMPLE_SHAPE) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


class GatedFunction:
    """Wraps a batch function; the first call blocks until `release()`, so requests queue up."""

    def __init__(self, function: Callable[[np.ndarray], object] = affine) -> None:
        self.function = function
        self.started = threading.Event()
        self.gate = threading.Event()
        self.batch_shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> object:
        self.batch_shapes.append(batch.shape)
        self.started.set()
        assert self.gate.wait(WAIT_S), "test gate never opened"
        return self.function(batch)

    def release(self) -> None:
        self.gate.set()


def gated_batcher(function: GatedFunction, **options: float) -> tuple[MicroBatcher, Future]:
    """A batcher whose worker is stuck in its first one-request call until `function.release()`."""
    batcher = MicroBatcher(function, max_wait_ms=0.0, **options)  # type: ignore[arg-type]
    first = batcher.submit(sample(-1.0))
    assert function.started.wait(WAIT_S)
    return batcher, first


def test_eight_threads_each_get_their_own_results() -> None:
    threads_count, requests_per_thread = 8, 25
    calls: list[int] = []

    def engine_fn(batch: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(batch))
        return affine(batch)

    results: dict[int, list[tuple[float, dict[str, np.ndarray]]]] = {}
    errors: list[BaseException] = []

    def producer(thread_id: int) -> None:
        rng = random.Random(thread_id)
        pending = []
        try:
            for index in range(requests_per_thread):
                value = thread_id * 1000 + index
                pending.append((value, batcher.submit(sample(value))))
                threading.Event().wait(rng.uniform(0.0, 0.002))
            results[thread_id] = [(value, future.result(WAIT_S)) for value, future in pending]
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    with MicroBatcher(engine_fn, max_batch=8, max_wait_ms=2.0, name="threads") as batcher:
        threads = [threading.Thread(target=producer, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S * 3)
    assert errors == []
    assert sorted(results) == list(range(threads_count))
    for thread_id, thread_results in results.items():
        assert len(thread_results) == requests_per_thread
        for index, (value, result) in enumerate(thread_results):
            assert value == thread_id * 1000 + index
            np.testing.assert_array_equal(result["scaled"], sample(value) * 2 + 1)
            assert result["total"] == pytest.approx(value * np.prod(SAMPLE_SHAPE))
    stats = batcher.stats()
    total = threads_count * requests_per_thread
    assert (stats.submitted, stats.items, stats.failed_batches) == (total, total, 0)
    assert stats.batches == len(calls)
    assert max(calls) <= 8
    assert sum(size * count for size, count in stats.batch_sizes.items()) == total


def test_queued_requests_coalesce_up_to_max_batch() -> None:
    function = GatedFunction()
    batcher, first = gated_batcher(function, max_batch=4)
    futures = [batcher.submit(sample(value)) for value in range(10)]
    assert batcher.stats().pending == 10
    function.release()
    for value, future in enumerate(futures):
        np.testing.assert_array_equal(future.result(WAIT_S)["scaled"], sample(value) * 2 + 1)
    assert first.result(WAIT_S)["total"] == pytest.approx(-6.0)
    batcher.close()
    assert [shape[0] for shape in function.batch_shapes] == [1, 4, 4, 2]
    stats = batcher.stats()
    assert stats.batch_sizes == {1: 1, 4: 2, 2: 1}
    assert stats.mean_batch_size == pytest.approx(11 / 4)


def test_wait_window_gathers_a_batch() -> None:
    calls: list[int] = []

    def engine_fn(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch + 1

    with MicroBatcher(engine_fn, max_batch=2, max_wait_ms=5000.0) as batcher:
        first, second = batcher.submit(sample(1.0)), batcher.submit(sample(2.0))
        np.testing.assert_array_equal(second.result(WAIT_S), sample(3.0))
        np.testing.assert_array_equal(first.result(WAIT_S), sample(2.0))
    assert calls == [2]  # one call, made as soon as the batch was full, not after 5 s


def test_different_shapes_go_to_separate_batches() -> None:
    function = GatedFunction()
    batcher, _ = gated_batcher(function, max_batch=8)
    small = [batcher.submit(sample(value, (2, 3))) for value in range(3)]
    large = [batcher.submit(sample(value, (4, 5))) for value in range(2)]
    mixed_dtype = batcher.submit(np.zeros((2, 3), np.float64))
    function.release()
    for value, future in enumerate(small):
        assert future.result(WAIT_S)["scaled"].shape == (2, 3)
        assert future.result(WAIT_S)["total"] == pytest.approx(value * 6)
    for value, future in enumerate(large):
        assert future.result(WAIT_S)["total"] == pytest.approx(value * 20)
    assert mixed_dtype.result(WAIT_S)["scaled"].dtype == np.float64
    batcher.close()
    assert function.batch_shapes == [(1, 2, 3), (3, 2, 3), (2, 4, 5), (1, 2, 3)]


def test_a_failing_batch_fails_only_its_own_futures() -> None:
    def engine_fn(batch: np.ndarray) -> dict[str, np.ndarray]:
        if (batch == 13).any():
            raise RuntimeError("poisoned sample")
        return affine(batch)

    function = GatedFunction(engine_fn)
    batcher, first = gated_batcher(function, max_batch=8)
    poisoned = [batcher.submit(sample(value, (2, 3))) for value in (1, 13, 2)]
    healthy = [batcher.submit(sample(value, (3, 3))) for value in (4, 5)]
    function.release()
    for future in poisoned:
        with pytest.raises(RuntimeError, match="poisoned sample"):
            future.result(WAIT_S)
    for value, future in zip((4, 5), healthy, strict=True):
        assert future.result(WAIT_S)["total"] == pytest.approx(value * 9)
    assert first.result(WAIT_S)["total"] == pytest.approx(-6.0)
    later = batcher.submit(sample(7.0))  # the worker survived the failure
    assert later.result(WAIT_S)["total"] == pytest.approx(42.0)
    batcher.close()
    stats = batcher.stats()
    assert (stats.batches, stats.failed_batches, stats.items) == (4, 1, 7)


@pytest.mark.parametrize(
    "engine_fn",
    [
        pytest.param(lambda batch: batch[:1], id="too-few-rows"),
        pytest.param(lambda batch: {"x": batch, "y": np.float32(1.0)}, id="scalar-output"),
        pytest.param(lambda batch: [batch, "text"], id="not-an-array"),
    ],
)
def test_unsplittable_outputs_fail_the_batch(engine_fn: Callable[[np.ndarray], object]) -> None:
    function = GatedFunction(engine_fn)
    batcher, _ = gated_batcher(function)
    pair = [batcher.submit(sample(value)) for value in (1.0, 2.0)]
    function.release()
    for future in pair:
        with pytest.raises(EngineError, match="batch output must be an array with 2 rows"):
            future.result(WAIT_S)
    batcher.close()
    assert function.batch_shapes[1] == (2, *SAMPLE_SHAPE)


def test_tuple_outputs_are_split_per_request() -> None:
    with MicroBatcher(lambda batch: (batch, batch.sum(axis=1)), max_wait_ms=0.0) as batcher:
        future = batcher.submit(np.arange(3, dtype=np.float32))
        scaled, total = future.result(WAIT_S)
    np.testing.assert_array_equal(scaled, np.arange(3, dtype=np.float32))
    assert total == pytest.approx(3.0)


def test_full_queue_raises_or_blocks_until_closed() -> None:
    function = GatedFunction()
    batcher, first = gated_batcher(function, queue_size=2)
    queued = [batcher.submit(sample(value)) for value in (1.0, 2.0)]
    with pytest.raises(BatcherFull, match="queue full"):
        batcher.submit(sample(3.0), timeout=0)
    with pytest.raises(BatcherFull):
        batcher.submit(sample(3.0), timeout=0.05)
    outcome: list[BaseException] = []
    producer_started = threading.Event()

    def blocked_producer() -> None:
        producer_started.set()
        try:
            batcher.submit(sample(4.0))
        except BaseException as error:  # checked by the main thread
            outcome.append(error)

    producer = threading.Thread(target=blocked_producer)
    producer.start()
    assert producer_started.wait(WAIT_S)
    closer = threading.Thread(target=batcher.close)
    closer.start()  # close() must not wait for the blocked producer
    producer.join(WAIT_S)
    assert not producer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], BatcherClosed)
    function.release()
    closer.join(WAIT_S)
    assert not closer.is_alive()
    for value, future in zip((1.0, 2.0), queued, strict=True):
        np.testing.assert_array_equal(future.result(0)["scaled"], sample(value) * 2 + 1)
    assert first.done()
    assert batcher.stats().rejected == 3


def test_close_runs_pending_work_then_rejects() -> None:
    function = GatedFunction()
    batcher, first = gated_batcher(function, max_batch=3)
    pending = [batcher.submit(sample(value)) for value in range(7)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    with pytest.raises(BatcherClosed):
        for _ in range(int(WAIT_S * 1000)):  # close() sets the flag at once; bounded loop
            batcher.submit(sample(99.0))
            threading.Event().wait(0.001)
    function.release()
    closer.join(WAIT_S)
    assert not closer.is_alive()
    for value, future in enumerate(pending):
        np.testing.assert_array_equal(future.result(0)["scaled"], sample(value) * 2 + 1)
    assert first.done() and not first.cancelled()
    batcher.close()  # idempotent
    with pytest.raises(BatcherClosed, match="is closed"):
        batcher.submit(sample(0.0))


def test_cancelled_requests_are_skipped() -> None:
    function = GatedFunction()
    batcher, _ = gated_batcher(function)
    cancelled, kept = batcher.submit(sample(1.0)), batcher.submit(sample(2.0))
    assert cancelled.cancel()
    function.release()
    assert kept.result(WAIT_S)["total"] == pytest.approx(12.0)
    batcher.close()
    assert function.batch_shapes == [(1, *SAMPLE_SHAPE), (1, *SAMPLE_SHAPE)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"max_batch": 0}, "max_batch must be >= 1", id="max-batch"),
        pytest.param({"max_wait_ms": -1.0}, "max_wait_ms must be >= 0", id="max-wait"),
        pytest.param({"queue_size": 0}, "queue_size must be >= 1", id="queue-size"),
    ],
)
def test_invalid_options(options: dict[str, float], message: str) -> None:
    with pytest.raises(EngineError, match=message):
        MicroBatcher(affine, **options)  # type: ignore[arg-type]
