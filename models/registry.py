"""A registry of model builders by name; duplicate names are rejected.

@register("ir_csn_152")
def ir_csn_152(**overrides) -> nn.Module: ...

model = build("ir_csn_152", num_classes=24)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

Builder = Callable[..., nn.Module]

_BUILDERS: dict[str, Builder] = {}


class ModelError(Exception):
    """A model name, architecture or checkpoint does not fit what was asked for."""


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register `builder` under `name`."""

    def decorator(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorator


def names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(_BUILDERS)


def build(name: str, **overrides: object) -> nn.Module:
    """Build the model registered as `name`, passing `overrides` to its builder."""
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(names())}") from None
    return builder(**overrides)
