"""The base of our Python GStreamer elements: a thin adapter around a plain Python stage.

An element is declared, not written: an `ElementSpec` names it, names the settings model whose
fields are its properties and lists any properties of its own (from which ``__gproperties__``,
``do_get_property`` and ``do_set_property`` are derived), and gives a factory for its `Stage`. The
stage holds all the logic and is driven by tests without GStreamer (Savant's pyfunc split)::

    PERSON = ElementSpec(
        name="tpsperson",
        summary="Detect persons on RGB frames",
        settings=PersonSettings,  # score_threshold: float -> score-threshold, ...
        stage_factory=lambda values, ctx: PersonStage(PERSON.settings_from(values), ctx.pool),
    )

`make_element_class(spec)` builds the `GstBase.BaseTransform` subclass (in place, RGB in and out);
`register_elements()` registers every element in `CATALOGUE` with the running process, and
``plugins/python/tpsplugins.py`` does the same for `gst-launch-1.0` through the gst-python loader.

Runtime behaviour: property values are handed to the stage factory when the element leaves READY
(later changes apply at the next start), with the process's `ProcessContext` (side table, network
pool, hooks, ...), looked up then, once (`plugins.context.current_context`); required properties
are checked then; a missing one, a failing ``stage.start()`` or an exception from
``stage.process()`` is posted on the bus as an element error naming the element, and the flow
returns ERROR. The stream name travels downstream as a sticky custom event (`STREAM_EVENT`) sent by
the element whose spec sets `announces_stream` (``tpsstamp``), which also writes each frame's index
into the buffer offset; every element uses the two to find the frame's `FrameRecord` (not the PTS,
which decoders may repeat or leave unset).
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstBase, GstVideo  # noqa: E402

from media.frames import map_rgb  # noqa: E402
from media.gst import init  # noqa: E402
from plugins.context import ProcessContext, current_context  # noqa: E402
from plugins.frames import FrameRecord  # noqa: E402
from plugins.settings_props import (  # noqa: E402
    PROP_TYPES,
    Prop,
    PropValue,
    SettingsT,
    settings_from_values,
    settings_props,
)

log = logging.getLogger(__name__)

RGB_CAPS = "video/x-raw,format=RGB,width=[1,2147483647],height=[1,2147483647]"
"""What every element accepts and produces: packed 8-bit RGB at any size and rate."""

STREAM_EVENT = "tps-stream"
"""Structure name of the sticky downstream event carrying the stream name (field ``stream``)."""

ELEMENT_KLASS = "Filter/Analyzer/Video"
ELEMENT_AUTHOR = "tps-parser"

CATALOGUE: tuple[str, ...] = (
    "plugins.stamp:STAMP",
    "plugins.person:PERSON",
    "plugins.pose:POSE",
    "plugins.parts:PARTS",
    "plugins.clip:CLIP_ELEMENT",
    "plugins.overlay:OVERLAY",
    "plugins.publish:PUBLISH",
)
"""Every element we ship, as ``module:attribute`` of its `ElementSpec`, imported on registration
so that importing this module pulls in no model code."""


FLOW_DROPPED = Gst.FlowReturn.CUSTOM_SUCCESS
"""GST_BASE_TRANSFORM_FLOW_DROPPED (a C macro the bindings lack): the buffer goes no further."""


class ElementError(Exception):
    """An element spec is malformed or an element cannot be registered."""


@dataclass(slots=True)
class FrameContext:
    """One frame as a stage sees it; valid only during `Stage.process`.

    Attributes:
        stream: stream name from the upstream ``tpsstamp`` ("" when there is none).
        frame_index: 0-based index in the stream, from the frame's record (None without one).
        pts_ns: buffer presentation time in nanoseconds (None when the buffer has none).
        width: frame width in pixels.
        height: frame height in pixels.
        rgb: (H, W, 3) uint8 view of the buffer; writable only for specs with ``writable=True``.
            Copy it to keep pixels beyond this call.
        record: the frame's side-table record, or None when no ``tpsstamp`` opened one.
        drop: set by a stage to drop the frame here (it goes no further downstream).
    """

    stream: str
    frame_index: int | None
    pts_ns: int | None
    width: int
    height: int
    rgb: np.ndarray
    record: FrameRecord | None
    drop: bool = False


class Stage(Protocol):
    """The logic behind an element, free of GStreamer."""

    def start(self) -> None:
        """Acquire resources (load models, open sockets); called when the element starts."""

    def process(self, frame: FrameContext) -> None:
        """Handle one frame: read `frame.rgb`, write results into `frame.record`."""

    def finish(self) -> None:
        """End of stream: flush what depends on the whole stream (before EOS goes downstream)."""

    def stop(self) -> None:
        """Release resources; called when the element stops, also after a failure."""


_T = TypeVar("_T")
_ErrorCode = Gst.CoreError | Gst.LibraryError | Gst.StreamError
_ERROR_DOMAINS: dict[type, str] = {
    Gst.CoreError: "core_error_quark",
    Gst.LibraryError: "library_error_quark",
    Gst.StreamError: "stream_error_quark",
}
"""Error enum -> name of its GQuark function, looked up at call time (Gst fakes it before init)."""
StageFactory = Callable[[Mapping[str, Any], ProcessContext], Stage]
"""Builds a stage from the property values and what the process's elements share."""

_NAME = re.compile(r"[a-z][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class ElementSpec(Generic[SettingsT]):
    """Everything that distinguishes one of our elements.

    Attributes:
        name: factory name (``tps...``), also the GType name's stem.
        summary: one-line description for gst-inspect.
        stage_factory: builds the stage from the property values (keys are `Prop.key`) and the
            process's context (`plugins.context.current_context` when the element starts).
        settings: the settings model whose fields are properties (`settings_props`), which the
            stage factory turns back into the model with `settings_from`.
        properties: the element's own properties, beyond its settings (e.g. a stream name).
        writable: the stage draws on `FrameContext.rgb` (the buffer is made writable, which may
            copy it); otherwise the element runs in passthrough and the view is read-only.
        announces_stream: the element owns a ``stream`` property and sends it downstream as the
            sticky `STREAM_EVENT` before its first buffer; it numbers the frames too: the
            `FrameContext.frame_index` its stage sets goes into the buffer offset (the buffer is
            made writable for that, its pixels are not copied), by which the elements after it find
            the frame's record.
    """

    name: str
    summary: str
    stage_factory: StageFactory
    settings: type[SettingsT] | None = None
    properties: tuple[Prop, ...] = ()
    writable: bool = False
    announces_stream: bool = False

    def __post_init__(self) -> None:
        names = [prop.name for prop in self.all_properties]
        for name in [self.name, *names]:
            if not _NAME.fullmatch(name):
                raise ElementError(
                    f"element {self.name!r}: name {name!r} does not match {_NAME.pattern}"
                )
        if len(set(names)) != len(names):
            raise ElementError(f"element {self.name!r}: duplicate property names in {names}")
        for prop in self.properties:
            if prop.type not in PROP_TYPES:
                raise ElementError(
                    f"element {self.name!r}: property {prop.name!r} has type"
                    f" {prop.type.__name__}, expected one of str, int, float, bool"
                )
        if self.announces_stream and "stream" not in names:
            raise ElementError(f"element {self.name!r} announces its stream but has no 'stream'")

    @property
    def all_properties(self) -> tuple[Prop, ...]:
        """The settings' properties, then the element's own."""
        derived = () if self.settings is None else settings_props(self.settings)
        return (*derived, *self.properties)

    def settings_from(self, values: Mapping[str, Any]) -> SettingsT:
        """The settings object from the property values (keys `Prop.key`).

        Raises:
            ValueError: the values make no valid settings, in one line naming the element.
        """
        if self.settings is None:
            raise ElementError(f"element {self.name!r} has no settings model")
        return settings_from_values(self.settings, values, self.name)


def stream_event(stream: str) -> Gst.Event:
    """The sticky downstream event that names the stream of the buffers following it."""
    structure = Gst.Structure.new_empty(STREAM_EVENT)
    structure.set_value("stream", stream)
    return Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM_STICKY, structure)


def _stream_of(event: Gst.Event) -> str | None:
    """The stream named by a `STREAM_EVENT`, or None for any other event."""
    if event.type != Gst.EventType.CUSTOM_DOWNSTREAM_STICKY:
        return None
    structure = event.get_structure()
    if structure is None or not structure.has_name(STREAM_EVENT):
        return None
    return structure.get_string("stream")


def _pad_templates() -> tuple[Gst.PadTemplate, Gst.PadTemplate]:
    caps = Gst.Caps.from_string(RGB_CAPS)
    return (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, caps),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, caps),
    )


class _ElementMethods:
    """The behaviour shared by every element; `make_element_class` copies these methods into each
    BaseTransform subclass (PyGObject installs only the ``do_*`` vfuncs found in a class's own
    namespace, so a plain mixin base would be ignored).
    """

    spec: ElementSpec

    def _setup(self) -> None:
        props = self.spec.all_properties
        self._values: dict[str, PropValue] = {p.name: p.default for p in props}
        self._stage: Stage | None = None
        self._context: ProcessContext | None = None
        self._video: GstVideo.VideoInfo | None = None
        self._stream = ""
        self._announce = False
        self.set_in_place(True)
        # the stamp writes the buffer offset: a writable buffer (a shallow copy at most) for it too
        self.set_passthrough(not (self.spec.writable or self.spec.announces_stream))

    # -- properties, derived from the spec's table ------------------------------------------
    def do_get_property(self, pspec: GObject.ParamSpec) -> PropValue:
        return self._values[pspec.name]

    def do_set_property(self, pspec: GObject.ParamSpec, value: PropValue) -> None:
        self._values[pspec.name] = value

    # -- lifecycle -------------------------------------------------------------------------
    def do_start(self) -> bool:
        props = self.spec.all_properties
        missing = [p.name for p in props if p.required and not self._values[p.name]]
        if missing:
            return self._fail(
                Gst.LibraryError.SETTINGS,
                f"required properties not set: {', '.join(missing)}",
                False,
            )
        values = {p.key: self._values[p.name] for p in props}
        self._context = context = current_context()  # the one lookup: the stage gets it from here
        try:
            self._stage = self.spec.stage_factory(values, context)
            self._stage.start()
        except Exception as error:  # any stage failure becomes a bus error
            self._stage = None
            return self._fail(Gst.LibraryError.INIT, f"cannot start: {error}", False, error)
        if self.spec.announces_stream:
            self._stream = str(self._values["stream"])
            self._announce = True
        log.debug("%s started with %s", self.get_name(), values)
        return True

    def do_stop(self) -> bool:
        stage, self._stage = self._stage, None
        if stage is not None:
            try:
                stage.stop()
            except Exception as error:  # stopping must not raise into GStreamer
                log.warning("%s: stage stop failed: %s", self.get_name(), error)
        return True

    def do_set_caps(self, incaps: Gst.Caps, outcaps: Gst.Caps) -> bool:
        self._video = GstVideo.VideoInfo.new_from_caps(incaps)
        return self._video is not None

    def do_sink_event(self, event: Gst.Event) -> bool:
        stream = _stream_of(event)
        if stream is not None and not self.spec.announces_stream:
            self._stream = stream
        if event.type == Gst.EventType.EOS and self._stage is not None:
            try:
                self._stage.finish()
            except Exception as error:  # a failing flush is reported, EOS still goes on
                self._fail(Gst.StreamError.FAILED, f"end of stream: {error}", False, error)
        return GstBase.BaseTransform.do_sink_event(self, event)

    # -- frames ------------------------------------------------------------------------------
    def do_transform_ip(self, buffer: Gst.Buffer) -> Gst.FlowReturn:
        if self._stage is None or self._context is None or self._video is None:
            return self._fail(
                Gst.CoreError.NEGOTIATION,
                "buffer before start or caps",
                Gst.FlowReturn.NOT_NEGOTIATED,
            )
        if self._announce:
            self._announce = False
            self.srcpad.push_event(stream_event(self._stream))
        pts = None if buffer.pts == Gst.CLOCK_TIME_NONE else buffer.pts
        index = None if buffer.offset == Gst.BUFFER_OFFSET_NONE else buffer.offset
        numbers = self.spec.announces_stream  # the stamp opens records; the others look them up
        table = self._context.table
        record = None if numbers or index is None else table.get(self._stream, index)
        width, height = self._video.width, self._video.height
        try:
            with map_rgb(buffer, width, height, writable=self.spec.writable) as rgb:
                frame = FrameContext(
                    stream=self._stream,
                    frame_index=None if record is None else record.frame_index,
                    pts_ns=pts,
                    width=width,
                    height=height,
                    rgb=rgb,
                    record=record,
                )
                started = time.perf_counter()
                self._stage.process(frame)
                self._context.hooks.stage_time(self.spec.name, time.perf_counter() - started)
                if frame.drop:
                    return FLOW_DROPPED
                if numbers and frame.frame_index is not None:
                    buffer.offset = frame.frame_index
        except Exception as error:  # a failing frame stops the stream with a bus error
            return self._fail(
                Gst.StreamError.FAILED,
                f"frame at pts {pts} of stream {self._stream!r}: {error}",
                Gst.FlowReturn.ERROR,
                error,
            )
        return Gst.FlowReturn.OK

    def _fail(self, code: _ErrorCode, text: str, result: _T, error: Exception | None = None) -> _T:
        """Post `text` as an element error on the bus (GST_ELEMENT_ERROR) and return `result`."""
        domain = getattr(Gst, _ERROR_DOMAINS[type(code)])()
        gerror = GLib.Error.new_literal(domain, text, int(code))
        debug = f"{type(error).__name__}: {error}" if error is not None else text
        self.post_message(Gst.Message.new_error(self, gerror, debug))
        log.debug("%s", text)
        return result


_classes: dict[str, type] = {}
_classes_lock = threading.Lock()


def make_element_class(spec: ElementSpec) -> type:
    """The `GstBase.BaseTransform` subclass for `spec` (built once per name, then reused)."""
    with _classes_lock:
        cls = _classes.get(spec.name)
        if cls is not None:
            return cls
        init()
        type_name = spec.name.capitalize()

        def __init__(self: Any) -> None:
            GstBase.BaseTransform.__init__(self)
            self._setup()

        namespace = {
            "__gtype_name__": type_name,
            "__gstmetadata__": (spec.name, ELEMENT_KLASS, spec.summary, ELEMENT_AUTHOR),
            "__gsttemplates__": _pad_templates(),
            "__gproperties__": {prop.name: prop.gproperty() for prop in spec.all_properties},
            "__init__": __init__,
            "spec": spec,
        }
        namespace.update(
            (key, value) for key, value in vars(_ElementMethods).items() if not key.startswith("__")
        )
        cls = type(type_name, (GstBase.BaseTransform,), namespace)
        _classes[spec.name] = cls
        return cls


def load_spec(entry: str) -> ElementSpec:
    """Import one `CATALOGUE` entry (``module:attribute``)."""
    module_name, _, attribute = entry.partition(":")
    spec = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(spec, ElementSpec):
        raise ElementError(f"catalogue entry {entry!r} is not an ElementSpec (got {spec!r})")
    return spec


def register_elements(
    specs: Iterable[ElementSpec] | None = None, plugin: Gst.Plugin | None = None
) -> list[str]:
    """Register elements with this process (idempotent); returns their names.

    Args:
        specs: what to register; every entry of `CATALOGUE` when None.
        plugin: the plugin owning the elements; None registers them as static elements of this
            process (in-process use); the gst-python loader passes its plugin.
    """
    specs = [load_spec(entry) for entry in CATALOGUE] if specs is None else list(specs)
    for spec in specs:
        cls = make_element_class(spec)
        if not Gst.Element.register(plugin, spec.name, Gst.Rank.NONE, cls.__gtype__):
            raise ElementError(f"cannot register element {spec.name!r}")
    return [spec.name for spec in specs]
