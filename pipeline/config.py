"""YAML configuration validated by pydantic, with one-line errors that name file, key and problem.

Every section is a frozen pydantic model that forbids unknown keys; `load_config` turns a YAML file
into such a model or raises `ConfigError` whose message is a single line, e.g.
``configs/demo.yaml: sources.0.uri: Input should be a valid string (got 3)``.

Relative paths written in a config file name files beside it, whatever the current directory:
`load_config` makes them absolute against the file's folder before validation (`resolve_paths`),
from the schema's fields typed `Path` and those marked `URI_OR_PATH`. Values given on the command
line (overrides applied afterwards) stay relative to the current directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, RootModel, ValidationError

from parsing.settings import Section

__all__ = [
    "URI_OR_PATH",
    "ConfigError",
    "RawConfig",
    "Section",
    "apply_overrides",
    "load_config",
    "resolve_paths",
    "validate",
]


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
    elif error["type"] == "value_error":  # our validators' own words, which name the value
        message = str(error["ctx"]["error"])
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


@dataclass(frozen=True, slots=True)
class UriOrPath:
    """Marks a ``str`` field holding a URI or a local file path (``Annotated[str, URI_OR_PATH]``):
    a relative path (no ``scheme://``) in a config file resolves against the file's folder, like a
    `Path` field; URIs stay as they are."""


URI_OR_PATH = UriOrPath()

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
"""The shipped configs, found from any working directory (their own paths resolve beside them)."""
DEMO_CONFIG = CONFIGS_DIR / "demo.yaml"
"""The demo: bare `run.py`, and the parser config of the offline tools."""
CAMERA_CONFIG = CONFIGS_DIR / "camera.yaml"
"""`run --source X` without `-c`: a user's own footage gets the real-footage model set."""


def resolve_paths(schema: type[BaseModel], data: object, folder: Path) -> object:
    """`data`, as read from a config file in `folder`, with its relative paths made absolute.

    Fields of `schema` typed `Path` (also optional, in lists and in nested sections) and fields
    marked `URI_OR_PATH` that hold a path are resolved; everything else, keys the schema does not
    know included, is returned as it is, for validation to judge.

    Args:
        schema: the model the data will be validated as.
        data: plain data (mappings, lists, strings) as YAML gives it; not modified.
        folder: the config file's folder, absolute and free of symlinks.
    """
    if not isinstance(data, dict):
        return data
    resolved = dict(data)
    for name, field in schema.model_fields.items():
        key = field.alias or name
        if key in resolved:
            resolved[key] = _resolve(field.annotation, field.metadata, resolved[key], folder)
    return resolved


def _resolve(annotation: Any, metadata: list | tuple, value: object, folder: Path) -> object:
    """One value of a field typed `annotation` (with pydantic's `metadata`), resolved."""
    if any(isinstance(mark, UriOrPath) for mark in metadata):
        return _beside(folder, value) if isinstance(value, str) and "://" not in value else value
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _resolve(args[0], args[1:], value, folder)
    if origin in (Union, UnionType):
        arms = [arm for arm in args if arm is not type(None)]
        return _resolve(arms[0], (), value, folder) if len(arms) == 1 else value
    if origin in (list, tuple) and args and isinstance(value, list):
        return [_resolve(args[0], (), item, folder) for item in value]
    if isinstance(annotation, type) and issubclass(annotation, PurePath) and isinstance(value, str):
        return _beside(folder, value)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return resolve_paths(annotation, value, folder)
    return value


def _beside(folder: Path, path: str) -> str:
    """`path` as written in a config file in `folder`: absolute, leading ``..`` taken off `folder`
    (exact, as `folder` has no symlinks left); an empty or absolute path stays as it is."""
    if not path or Path(path).is_absolute():
        return path
    parts = Path(path).parts
    while parts and parts[0] == "..":
        folder, parts = folder.parent, parts[1:]
    return str(folder.joinpath(*parts))


def load_config(
    path: str | Path, model: type[SectionT], schema: type[BaseModel] | None = None
) -> SectionT:
    """Read YAML from `path` and validate it as `model`.

    Relative paths in the file resolve against its folder (`resolve_paths`), by the fields of
    `schema` (default `model`): a `RawConfig` read for later overrides names the model its data
    will be validated as, since it has no fields of its own.

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
    folder = path.absolute().parent.resolve()
    return validate(model, resolve_paths(schema or model, data, folder), str(path))
