"""The training loop every recipe shares: the report's optimiser and schedule, logs, checkpoints.

The report trains with SGD (Nesterov momentum 0.9, weight decay 1e-4), a linear warm-up counted in
iterations and a step decay (x0.1) at milestone epochs. `fit` runs that loop for any model given
two callables, one yielding an epoch's batches and one turning a batch into named losses:

    metrics = fit(model, batches, step_loss, config, out_dir, resume=False, validate=evaluate)

Every epoch ends with `<out_dir>/last.pt` (model, optimiser, scheduler, epoch, iteration and the
torch / numpy / python RNG states), so `resume=True` continues exactly where training stopped,
provided `batches(epoch)` depends only on the epoch (use `epoch_rng`). Progress goes to a tqdm bar
and to `<out_dir>/log.jsonl`, one JSON object per logged iteration or validation.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import DirectoryPath, Field
from torch import Tensor, nn
from tqdm import tqdm

from engines import create_engine
from models import save_checkpoint
from parsing.networks import Network
from parsing.settings import Section

log = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
LOG_FILE = "log.jsonl"
DEFAULT_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_WARMUP_RATIO = 0.001
DEFAULT_GAMMA = 0.1


class TrainError(Exception):
    """Training cannot start or go on: bad data, a missing checkpoint, a diverging loss."""


class TrainConfigBase(Section):
    """Fields every training recipe shares; recipes subclass it with their own.

    `data` must be an existing split directory (written by `run.py synth`), so a config pointing
    at a missing split fails at load time with one line naming the file, the key and the path.
    """

    data: DirectoryPath = Field(description="the training split directory")
    val_data: DirectoryPath | None = Field(None, description="a validation split directory")
    out: Path = Field(description="directory for last.pt, log.jsonl and the final weights")
    seed: int = Field(0, description="seed of weights init, data order and augmentation")
    epochs: int = Field(ge=1, description="epochs to train")
    batch_size: int = Field(ge=1, description="samples per iteration")
    lr: float = Field(gt=0, description="base learning rate after warm-up")
    milestones: tuple[int, ...] = Field((), description="epochs at which lr is multiplied by gamma")
    gamma: float = Field(DEFAULT_GAMMA, gt=0, description="lr factor at each milestone")
    warmup_iters: int = Field(0, ge=0, description="iterations of linear warm-up")
    warmup_ratio: float = Field(
        DEFAULT_WARMUP_RATIO, gt=0, le=1, description="lr factor at the first warm-up iteration"
    )
    momentum: float = Field(DEFAULT_MOMENTUM, ge=0, lt=1, description="SGD (Nesterov) momentum")
    weight_decay: float = Field(DEFAULT_WEIGHT_DECAY, ge=0, description="SGD weight decay")
    max_iters_per_epoch: int | None = Field(
        None, ge=1, description="cap on iterations per epoch (keeps CPU runs short)"
    )
    grad_clip: float | None = Field(None, gt=0, description="max gradient L2 norm (none: off)")
    log_interval: int = Field(10, ge=1, description="iterations between log.jsonl lines")
    val_interval: int = Field(1, ge=1, description="epochs between validations (last always)")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (none: torch default)")


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (weights init, dropout)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """A generator for one epoch's data order and augmentation, independent of earlier epochs.

    Deriving it from (seed, epoch) alone is what lets a resumed run see the same batches.
    """
    return np.random.default_rng([seed, epoch])


class EpochBatches:
    """The base of each recipe's batch iterator: one epoch's sample order and random draws.

    Both come from `epoch_rng` (seed, epoch) alone, so a resumed run sees the same batches.
    """

    def __init__(self, samples: int, batch_size: int, seed: int, epoch: int) -> None:
        self.rng = epoch_rng(seed, epoch)
        self.order = self.rng.permutation(samples)
        self.batch_size = batch_size

    def __len__(self) -> int:
        """Full batches in the epoch."""
        return len(self.order) // self.batch_size


def make_optimizer(
    params: Iterable[nn.Parameter],
    lr: float,
    momentum: float = DEFAULT_MOMENTUM,
    weight_decay: float = DEFAULT_WEIGHT_DECAY,
    nesterov: bool = True,
) -> torch.optim.SGD:
    """The report's optimiser: SGD with Nesterov momentum and weight decay on all parameters."""
    trainable = [param for param in params if param.requires_grad]
    if not trainable:
        raise TrainError("make_optimizer got no trainable parameters")
    return torch.optim.SGD(
        trainable, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov
    )


class WarmupStepLR:
    """Per-iteration lr: linear warm-up, then x gamma at each milestone epoch (mmcv's schedule).

    At iteration i of epoch e = i // iters_per_epoch the lr of each group is
    ``base * gamma ** #{m in milestones: m <= e} * w(i)`` with the linear warm-up factor
    ``w(i) = 1 - (1 - warmup_ratio) * (1 - i / warmup_iters)`` while ``i < warmup_iters``, else 1.
    Construction sets the lr of iteration 0; call `step()` after every optimiser step.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        iters_per_epoch: int,
        milestones_epochs: Sequence[int],
        gamma: float = DEFAULT_GAMMA,
        warmup_iters: int = 0,
        warmup_ratio: float = DEFAULT_WARMUP_RATIO,
    ) -> None:
        if iters_per_epoch < 1:
            raise TrainError(f"iters_per_epoch must be >= 1; got {iters_per_epoch}")
        self.optimizer = optimizer
        self.iters_per_epoch = iters_per_epoch
        self.milestones = tuple(sorted(milestones_epochs))
        self.gamma = gamma
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.iteration = 0
        self._apply()

    def factor(self, iteration: int) -> float:
        """The lr multiplier at a global iteration."""
        epoch = iteration // self.iters_per_epoch
        decay = self.gamma ** sum(1 for milestone in self.milestones if milestone <= epoch)
        if iteration < self.warmup_iters:
            decay *= 1 - (1 - self.warmup_ratio) * (1 - iteration / self.warmup_iters)
        return decay

    def step(self) -> None:
        """Advance one iteration and set the new lr on every parameter group."""
        self.iteration += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The lr of each parameter group now."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Plain data (numbers and lists) that `load_state_dict` restores."""
        return {"iteration": self.iteration, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the iteration and base lrs, and set the lr they imply."""
        self.iteration = int(state["iteration"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._apply()

    def _apply(self) -> None:
        factor = self.factor(self.iteration)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor


class JsonlLog:
    """Appends one JSON object per line to a file, stamping each with the wall time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Mapping[str, object]) -> None:
        """Append `record` plus ``"time"`` (seconds since the epoch) as one line."""
        line = json.dumps({**record, "time": round(time.time(), 3)})
        with self.path.open("a") as handle:
            handle.write(line + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every record written so far (an empty list when the file does not exist)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


@dataclass
class TrainState:
    """Where training stands: epochs completed and optimiser steps taken."""

    epoch: int = 0
    iteration: int = 0


def _rng_states() -> dict[str, Any]:
    """Global RNG states as tensors and plain containers (loadable with weights_only=True)."""
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gauss": float(cached_gauss),
        },
        "python": [list(item) if isinstance(item, tuple) else item for item in random.getstate()],
    }


def _restore_rng_states(states: Mapping[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gauss"],
        )
    )
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class Checkpointer:
    """Saves and restores a run in `out_dir`: `last.pt` to resume, `<name>.safetensors` to use."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.last_path = self.out_dir / LAST_CHECKPOINT

    def save(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: WarmupStepLR,
        state: TrainState,
    ) -> Path:
        """Write everything needed to resume (atomically: a partial file, then a rename)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        partial = self.last_path.with_name(self.last_path.name + ".partial")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": state.epoch,
                "iteration": state.iteration,
                "rng": _rng_states(),
            },
            partial,
        )
        partial.replace(self.last_path)
        return self.last_path

    def load(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: WarmupStepLR
    ) -> TrainState:
        """Restore model, optimiser, scheduler and RNG states from `last.pt`.

        Raises:
            TrainError: there is no `last.pt`, or it does not fit the model.
        """
        if not self.last_path.is_file():
            raise TrainError(f"cannot resume: {self.last_path} does not exist")
        try:
            saved = torch.load(self.last_path, map_location="cpu", weights_only=True)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        except (RuntimeError, KeyError, ValueError, OSError) as error:
            raise TrainError(f"cannot resume from {self.last_path}: {error}") from error
        scheduler.load_state_dict(saved["scheduler"])
        _restore_rng_states(saved["rng"])
        return TrainState(epoch=int(saved["epoch"]), iteration=int(saved["iteration"]))

    def save_weights(
        self,
        model: nn.Module,
        name: str,
        arch: str,
        classes: Sequence[str] | Mapping[str, Sequence[str]],
        extra: Mapping[str, object] | None = None,
    ) -> Path:
        """Write the final weights as `<out_dir>/<name>.safetensors` in our checkpoint format."""
        return save_checkpoint(model, self.out_dir / f"{name}.safetensors", arch, classes, extra)


class Batches(Sized, Iterable[Any], Protocol):
    """One epoch's batches: iterable, with a length (the iterations it yields)."""


StepLoss = Callable[[nn.Module, Any], Mapping[str, Tensor]]
Validate = Callable[[nn.Module], Mapping[str, float]]


def parser_network(model: nn.Module, input_hw: tuple[int, int]) -> Network:
    """`model` as the frame parser's `Network` (torch engine, CPU, fp32), so validation measures
    it through the parser's own inference code rather than a copy of it.

    The engine puts `model` in eval mode; the caller restores training mode.
    """
    engine = create_engine("torch", model)
    return Network(
        arch=type(model).__name__,
        run=engine.run,
        model=model,
        input_shape=(3, *input_hw),
        classes=[],
        engine=engine,
        metadata={},
    )


def _run_validation(model: nn.Module, validate: Validate) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        metrics = {key: float(value) for key, value in validate(model).items()}
    model.train()
    return metrics


def fit(
    model: nn.Module,
    batches: Callable[[int], Batches],
    step_loss: StepLoss,
    config: TrainConfigBase,
    out_dir: str | Path,
    resume: bool = False,
    validate: Validate | None = None,
) -> dict[str, float]:
    """Train `model` with the report's optimiser and schedule; resumable, logged.

    Args:
        model: the network, in its initial state (seeded by the caller).
        batches: epoch index -> that epoch's batches; must depend on the epoch only (see
            `epoch_rng`) for resume to be exact. The epoch's iteration count is
            ``min(len(batches(epoch)), config.max_iters_per_epoch)``.
        step_loss: (model, batch) -> named scalar losses, summed for the backward pass.
        config: optimiser, schedule and logging settings.
        out_dir: where `last.pt` and `log.jsonl` go.
        resume: continue from `<out_dir>/last.pt` instead of starting afresh.
        validate: model -> named metrics, run under `no_grad` in eval mode after every
            `val_interval` epochs and after the last.

    Returns:
        {"epochs", "iterations", "loss" (mean of the last epoch), "train_seconds", and the last
        validation's metrics prefixed "val_"}.

    Raises:
        TrainError: no batches, a non-finite loss, or a failed resume.
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    checkpointer = Checkpointer(out_dir)
    journal = JsonlLog(out_dir / LOG_FILE)
    optimizer = make_optimizer(model.parameters(), config.lr, config.momentum, config.weight_decay)
    first = batches(0)
    iters_per_epoch = _epoch_length(first, config.max_iters_per_epoch)
    scheduler = WarmupStepLR(
        optimizer,
        iters_per_epoch,
        config.milestones,
        config.gamma,
        config.warmup_iters,
        config.warmup_ratio,
    )
    state = checkpointer.load(model, optimizer, scheduler) if resume else TrainState()
    if resume:
        log.info("resuming %s at epoch %d, iteration %d", out_dir, state.epoch, state.iteration)
    model.train()
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    epoch_loss = math.nan
    for epoch in range(state.epoch, config.epochs):
        epoch_batches = first if epoch == 0 else batches(epoch)
        count = _epoch_length(epoch_batches, config.max_iters_per_epoch)
        epoch_loss = _train_epoch(
            model, epoch_batches, count, step_loss, optimizer, scheduler, state, config, journal
        )
        state.epoch = epoch + 1
        last_epoch = state.epoch == config.epochs
        if validate is not None and (last_epoch or state.epoch % config.val_interval == 0):
            metrics = _run_validation(model, validate)
            journal.write({"epoch": state.epoch, "iter": state.iteration, "val": metrics})
            log.info("epoch %d validation: %s", state.epoch, metrics)
        checkpointer.save(model, optimizer, scheduler, state)
    if validate is not None and not metrics:  # resumed after the last epoch
        metrics = _run_validation(model, validate)
    return {
        "epochs": float(state.epoch),
        "iterations": float(state.iteration),
        "loss": epoch_loss,
        "train_seconds": round(time.perf_counter() - started, 1),
        **{f"val_{key}": value for key, value in metrics.items()},
    }


def _epoch_length(epoch_batches: Batches, cap: int | None) -> int:
    count = len(epoch_batches)
    if count == 0:
        raise TrainError("the training data yields no batches (empty split or batch too large)")
    return min(count, cap) if cap is not None else count


def _train_epoch(
    model: nn.Module,
    epoch_batches: Batches,
    count: int,
    step_loss: StepLoss,
    optimizer: torch.optim.Optimizer,
    scheduler: WarmupStepLR,
    state: TrainState,
    config: TrainConfigBase,
    journal: JsonlLog,
) -> float:
    """One epoch of `count` optimiser steps; returns the mean total loss."""
    total = 0.0
    progress = tqdm(
        zip(range(count), epoch_batches, strict=False),
        total=count,
        desc=f"epoch {state.epoch + 1}/{config.epochs}",
        disable=None,
        leave=False,
    )
    steps = 0
    for _, batch in progress:
        losses = dict(step_loss(model, batch))
        loss = sum(losses.values(), torch.zeros(()))
        if not torch.isfinite(loss):
            parts = {name: value.item() for name, value in losses.items()}
            raise TrainError(
                f"loss is not finite at epoch {state.epoch + 1}, iteration {state.iteration}: "
                f"{parts}"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        state.iteration += 1
        steps += 1
        value = loss.item()
        total += value
        progress.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
        if state.iteration % config.log_interval == 0 or steps == count:
            journal.write(
                {
                    "epoch": state.epoch + 1,
                    "iter": state.iteration,
                    "loss": round(value, 6),
                    **{name: round(part.item(), 6) for name, part in losses.items()},
                    "lr": lr,
                }
            )
    progress.close()
    return total / max(steps, 1)
