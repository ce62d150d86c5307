"""Layers shared by the networks: frozen BatchNorm (2d and 3d, one implementation), input scaling.

Frozen BatchNorm is how the report fine-tunes CSN and how detectors fine-tune their backbones: the
layer always normalises with its running statistics, never updates them, and its affine
parameters do not train, even while the rest of the model is in train mode. The frozen classes
subclass `nn.BatchNorm2d` / `nn.BatchNorm3d`, so their `state_dict()` keys (`weight`, `bias`,
`running_mean`, `running_var`, `num_batches_tracked`) are exactly those of ordinary BatchNorm and
OpenMMLab checkpoints load into either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from models.registry import ModelError


class _FrozenBatchNormMixin:
    """Keeps a BatchNorm layer in eval mode and its affine parameters out of training.

    Mixed in before the concrete `nn.BatchNormNd`; `forward` is BatchNorm's own eval path.
    `requires_grad` is switched off once, at construction: an optimiser built from the
    parameters that require grad skips them (a later `model.requires_grad_(True)` turns it back
    on; the statistics stay frozen regardless).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for parameter in self.parameters(recurse=False):  # type: ignore[attr-defined]
            parameter.requires_grad_(False)
        super().train(False)  # type: ignore[misc]

    def train(self, mode: bool = True) -> Self:
        """Ignore `mode`: a frozen layer stays in eval mode."""
        del mode
        return super().train(False)  # type: ignore[misc]


class FrozenBatchNorm2d(_FrozenBatchNormMixin, nn.BatchNorm2d):
    """BatchNorm2d that always uses running statistics; weight and bias do not train. N,C,H,W."""


class FrozenBatchNorm3d(_FrozenBatchNormMixin, nn.BatchNorm3d):
    """BatchNorm3d that always uses running statistics; weight and bias do not train. N,C,T,H,W."""


_FROZEN_OF: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm2d: FrozenBatchNorm2d,
    nn.BatchNorm3d: FrozenBatchNorm3d,
}


def _frozen_copy(norm: nn.BatchNorm2d | nn.BatchNorm3d) -> nn.Module:
    """A frozen twin of `norm` with the same hyper-parameters and state."""
    frozen = _FROZEN_OF[type(norm)](
        norm.num_features,
        eps=norm.eps,
        momentum=norm.momentum,
        affine=norm.affine,
        track_running_stats=norm.track_running_stats,
        device=norm.running_mean.device if norm.running_mean is not None else None,
        dtype=norm.running_mean.dtype if norm.running_mean is not None else None,
    )
    frozen.load_state_dict(norm.state_dict())
    return frozen


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every plain `BatchNorm2d`/`BatchNorm3d` inside `module` by its frozen twin.

    Works in place (state and keys are kept) and returns `module` for chaining. A module that is
    itself a BatchNorm layer is returned as a frozen copy, since it cannot replace itself.
    Layers that are already frozen, or other BatchNorm subclasses, are left as they are.
    """
    if type(module) in _FROZEN_OF:
        return _frozen_copy(module)  # type: ignore[arg-type]
    for name, child in module.named_children():
        if type(child) in _FROZEN_OF:
            setattr(module, name, _frozen_copy(child))  # type: ignore[arg-type]
        else:
            freeze_batchnorm(child)
    return module


def normalize_channels_last(
    pixels: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """`(pixels - mean) / std` over the last (channel) axis, as float32.

    Args:
        pixels: uint8 (or float, 0..255) array or tensor shaped (..., C), channels last.
        mean: C per-channel means in pixel units.
        std: C per-channel standard deviations in pixel units.

    Returns:
        float32 tensor shaped like `pixels`, on the device of `pixels`.
    """
    values = torch.as_tensor(pixels)
    if values.shape[-1] != len(mean):
        raise ModelError(
            f"pixels have {values.shape[-1]} channels in the last axis "
            f"(shape {tuple(values.shape)}), expected {len(mean)}"
        )
    mean_c = torch.tensor(mean, dtype=torch.float32, device=values.device)
    std_c = torch.tensor(std, dtype=torch.float32, device=values.device)
    return (values.to(torch.float32) - mean_c) / std_c
