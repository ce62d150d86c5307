"""YAML configuration validated by pydantic, with one-line errors that name file, key and problem.

Every section is a frozen pydantic model that forbids unknown keys; `load_config` turns a YAML file
into such a model or raises `ConfigError` whose message is a single line, e.g.
``configs/demo.yaml: sources.0.uri: Input should be a valid string (got 3)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, RootModel, ValidationError

from parsing.settings import Section

__all__ = ["ConfigError", "RawConfig", "Section", "apply_overrides", "load_config", "validate"]


class RawConfig(RootModel[dict[str, Any]]):
    """A YAML mapping read as it is, to be validated after command-line changes."""


class ConfigError(Exception):
    """A configuration file is missing, unreadable or does not match its schema."""


SectionT = TypeVar("SectionT", bound=BaseModel)


def _describe(error: dict) -> str:
    """One validation error as ``key.path: message (got value)``."""
    path = ".".join(str(part) for part in error["loc"]) or "<root>"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
        message = f"{message} (got {error.get('input')!r})"
    return f"{path}: {message}"


def validate(model: type[SectionT], data: object, source: str) -> SectionT:
    """Validate plain data against `model`; `source` names where the data came from."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as error:
        problems = "; ".join(_describe(e) for e in error.errors())
        raise ConfigError(f"{source}: {problems}") from error


def apply_overrides(data: dict, overrides: list[str], source: str) -> dict:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to plain config data.

    ``parser.parts.paint=false`` sets a nested key; list items are addressed by index
    (``parser.clip.networks.0.weights=w.safetensors``).

    Raises:
        ConfigError: an override without ``=`` or whose path does not lead into the data.
    """
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source}: override {override!r} is not key.path=value")
        *parents, last = key.split(".")
        target: object = data
        for part in parents:
            if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            elif isinstance(target, dict):
                target = target.setdefault(part, {})
            else:
                raise ConfigError(f"{source}: override {key!r}: {part!r} is not in the config")
        value = yaml.safe_load(text)
        if isinstance(target, list) and last.isdigit() and int(last) < len(target):
            target[int(last)] = value
        elif isinstance(target, dict):
            target[last] = value
        else:
            raise ConfigError(f"{source}: override {key!r}: {last!r} is not in the config")
    return data


def load_config(path: str | Path, model: type[SectionT]) -> SectionT:
    """Read YAML from `path` and validate it as `model`.

    Raises:
        ConfigError: the file is missing or unreadable, is not YAML, or fails validation.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config ({error.strerror})") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from error
    return validate(model, data, str(path))
