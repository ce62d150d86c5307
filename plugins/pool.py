"""One copy of each network per process, shared by every stream through a micro-batcher.

Elements ask their process's pool (`plugins.context.ProcessContext.pool`) for a network by its
settings; the first asks loads it, everyone after gets the same `Network` whose `run` goes through
one `MicroBatcher`, so the frames of many streams are served by one batched call per stage.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import numpy as np

from engines import MicroBatcher
from parsing.networks import Network, Runner, load_network, model_set
from parsing.settings import NetworkSettings

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_WAIT_MS = 0.0
"""No waiting: a batch is whatever queued while the previous call ran (dynamic batching)."""

BatchObserver = Callable[[str, int], None]
"""Told (network name, batch size) after every batched call, e.g. to feed a metric."""


def batched_runner(batcher: MicroBatcher) -> Runner:
    """A `Runner` that sends each sample of a batch through `batcher` and gathers the results."""

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        futures = [batcher.submit(sample) for sample in batch]
        results = [future.result() for future in futures]
        return {name: np.stack([result[name] for result in results]) for name in results[0]}

    return run


class NetworkPool:
    """Loaded networks by (weights, engine, device, precision, threads), each behind a
    micro-batcher."""

    def __init__(
        self,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        observer: BatchObserver | None = None,
    ) -> None:
        self.max_batch, self.max_wait_ms, self.observer = max_batch, max_wait_ms, observer
        self._networks: dict[tuple, Network] = {}
        self._batchers: list[MicroBatcher] = []
        self._lock = threading.Lock()

    def get(self, settings: NetworkSettings) -> Network:
        """The shared network for these settings, loaded on first use."""
        key = (
            settings.weights.resolve(),
            settings.engine,
            settings.device,
            settings.precision,
            settings.threads,  # an engine runs with the threads it was loaded with
        )
        with self._lock:
            network = self._networks.get(key)
            if network is None:
                network = self._load(settings)
                self._networks[key] = network
            return network

    def _load(self, settings: NetworkSettings) -> Network:
        network = load_network(settings)
        name = settings.weights.stem
        engine_run = network.run
        observer = self.observer

        def run_and_observe(batch: np.ndarray) -> dict[str, np.ndarray]:
            outputs = engine_run(batch)
            if observer is not None:
                observer(name, len(batch))
            return outputs

        batcher = MicroBatcher(
            run_and_observe, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms, name=name
        )
        self._batchers.append(batcher)
        log.info("loaded %s (%s) from %s", network.arch, settings.engine, settings.weights)
        return dataclasses.replace(network, run=batched_runner(batcher))

    def model_set(self) -> str | None:
        """The model set of the networks loaded so far (`parsing.networks.model_set`); None
        before the first."""
        with self._lock:
            origins = [network.origin for network in self._networks.values()]
        return model_set(origins) if origins else None

    def close(self) -> None:
        """Stop every batcher and release every engine."""
        with self._lock:
            for batcher in self._batchers:
                batcher.close()
            for network in self._networks.values():
                network.engine.close()
            self._batchers.clear()
            self._networks.clear()
