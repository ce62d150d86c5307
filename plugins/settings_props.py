"""Element properties, and how they come from a settings model and go back into one.

A parser element states no property of its own for a setting: `settings_props` derives one `Prop`
per field of its pydantic model (``refine_person_boxes`` -> ``refine-person-boxes``; type, default,
description and bounds from the field), `launch_properties` renders a settings object as those
properties in a gst-launch line, and `settings_from_values` builds the model back from the values
the element holds. A setting is thus stated once, on its model, and reaches its stage whole.

A field of type bool, int, float, str, `Path` or a ``Literal`` of strings is a property of that
type (str for the last three; None, or an empty string, leaves an optional one unset); any other
field (a list of networks, an optional number) is a string property holding the field as JSON.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import gi
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

gi.require_version("GObject", "2.0")
from gi.repository import GObject  # noqa: E402

from media.gst import quote  # noqa: E402

PropValue = str | int | float | bool | None
SettingsT = TypeVar("SettingsT", bound=BaseModel)

_INT_RANGE = (-(2**31), 2**31 - 1)
_FLOAT_RANGE = (-1.0e300, 1.0e300)
_GTYPES: dict[type, GObject.GType] = {
    str: GObject.TYPE_STRING,
    int: GObject.TYPE_INT,
    float: GObject.TYPE_DOUBLE,
    bool: GObject.TYPE_BOOLEAN,
}
PROP_TYPES = tuple(_GTYPES)
"""The types a `Prop` may have."""
_PLAIN = re.compile(r"[\w.:/+-]+")
"""Text a launch line takes without quotes."""


@dataclass(frozen=True, slots=True)
class Prop:
    """One element property, declared once.

    Attributes:
        name: property name as written in a launch line (``[a-z][a-z0-9-]*``); the stage factory
            receives it with ``-`` turned into ``_``.
        type: str, int, float or bool.
        default: default value (None only for str).
        blurb: one line for gst-inspect.
        required: must be set (a non-empty string) before the element leaves READY.
        minimum: lower bound for int and float.
        maximum: upper bound for int and float.
        json: a str property holding its settings field as JSON.
    """

    name: str
    type: type
    default: PropValue
    blurb: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    json: bool = False

    @property
    def key(self) -> str:
        """The name as a Python identifier (the settings field's name)."""
        return self.name.replace("-", "_")

    def gproperty(self) -> tuple:
        """The ``__gproperties__`` entry of this property."""
        gtype = _GTYPES[self.type]
        flags = GObject.ParamFlags.READWRITE
        if self.type in (int, float):
            low, high = _INT_RANGE if self.type is int else _FLOAT_RANGE
            low = low if self.minimum is None else self.type(self.minimum)
            high = high if self.maximum is None else self.type(self.maximum)
            return (gtype, self.name, self.blurb, low, high, self.default, flags)
        return (gtype, self.name, self.blurb, self.default, flags)


def _scalar(annotation: Any) -> tuple[type | None, tuple[str, ...]]:
    """The property type of a field's annotation (None: JSON) and a ``Literal``'s choices."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        kind, choices = _scalar(rest[0]) if len(rest) == 1 else (None, ())
        # an optional number has no GObject "unset": it goes as JSON, like any other union
        return (kind, choices) if kind is str else (None, ())
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return (str, choices) if all(isinstance(c, str) for c in choices) else (None, ())
    if annotation is Path:
        return str, ()
    return (annotation, ()) if annotation in _GTYPES else (None, ())


def _bounds(field: FieldInfo, kind: type) -> tuple[float | None, float | None]:
    """The field's bounds as the inclusive range of a GObject property (the model checks the
    exclusive ones exactly)."""
    step = 1 if kind is int else 0
    low = high = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Gt):
            low = item.gt + step
        elif isinstance(item, annotated_types.Le):
            high = item.le
        elif isinstance(item, annotated_types.Lt):
            high = item.lt - step
    return low, high


def _prop(name: str, field: FieldInfo) -> Prop:
    kind, choices = _scalar(field.annotation)
    blurb = field.description or name
    blurb += f" ({', '.join(choices)})" if choices else ""
    prop_name = name.replace("_", "-")
    required = field.is_required()
    if kind is None or (kind is not str and required):
        return Prop(prop_name, str, None, f"{blurb} (JSON)", required=required, json=True)
    default = None if required else field.get_default(call_default_factory=True)
    if kind is str:
        return Prop(prop_name, str, None if default is None else str(default), blurb, required)
    low, high = _bounds(field, kind) if kind in (int, float) else (None, None)
    return Prop(prop_name, kind, default, blurb, minimum=low, maximum=high)


@cache
def settings_props(model: type[BaseModel]) -> tuple[Prop, ...]:
    """One property per field of `model`, in the model's order."""
    return tuple(_prop(name, field) for name, field in model.model_fields.items())


def settings_from_values(
    model: type[SettingsT], values: Mapping[str, Any], owner: str
) -> SettingsT:
    """The `model` object from an element's property values (keys `Prop.key`).

    Raises:
        ValueError: the values make no valid settings, in one line naming `owner` (the element)
            and the property.
    """
    data: dict[str, Any] = {}
    for prop in settings_props(model):
        value = values[prop.key]
        if prop.type is str and not value:
            continue  # unset: the field's default
        try:
            data[prop.key] = json.loads(value) if prop.json else value
        except json.JSONDecodeError as error:
            raise ValueError(f"{owner}: {prop.name}: not JSON ({error})") from error
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_problem(problem) for problem in error.errors())
        raise ValueError(f"{owner}: {problems}") from error


def _problem(problem: Mapping[str, Any]) -> str:
    """One validation problem, named by its property (and the place inside a JSON one)."""
    if not problem["loc"]:
        return str(problem["msg"])
    field, *inside = problem["loc"]
    where = ".".join([str(field).replace("_", "-"), *map(str, inside)])
    return f"{where}: {problem['msg']}"


def _launch_value(prop: Prop, value: Any) -> str:
    if prop.json:
        return quote(json.dumps(value))
    if prop.type is bool:
        return "true" if value else "false"
    text = str(value)
    return text if prop.type is not str or _PLAIN.fullmatch(text) else quote(text)


def launch_properties(settings: BaseModel) -> str:
    """`settings` as ``name=value`` properties of a gst-launch line (unset optional fields left
    out), which the element of its model turns back into an equal object."""
    dumped = settings.model_dump(mode="json")
    return " ".join(
        f"{prop.name}={_launch_value(prop, dumped[prop.key])}"
        for prop in settings_props(type(settings))
        if dumped[prop.key] is not None
    )
