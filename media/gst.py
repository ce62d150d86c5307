"""The GStreamer helpers of every package that touches video: lazy init, parse/launch, bounded bus
waits, error text, caps strings.

GStreamer is initialised on first use (`init`), never at import. Every wait on the bus is bounded
by a timeout; bus errors become `GstError` with a one-line message naming the element.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
RGB_FORMAT = "RGB"


class GstError(Exception):
    """A pipeline cannot be built, fails while running, or does not finish in time."""


def init() -> None:
    """Initialise GStreamer once; later calls do nothing."""
    if not Gst.is_initialized():
        Gst.init(None)
        log.debug("GStreamer %s initialised", Gst.version_string())


FLOATING_WARNING = "should be floating"
"""GStreamer 1.22 prints this CRITICAL for every element registered from Python; it is harmless."""


def silence_floating_warning() -> None:
    """Drop GStreamer's "element should be floating" CRITICAL lines, pass every other message on.

    Changes process-wide logging: only `run.py` calls it.
    """

    def handler(domain: str, level: GLib.LogLevelFlags, message: str, data: object) -> None:
        if FLOATING_WARNING not in message:
            GLib.log_default_handler(domain, level, message, data)

    levels = GLib.LogLevelFlags.LEVEL_CRITICAL | GLib.LogLevelFlags.FLAG_FATAL
    GLib.log_set_handler("GStreamer", levels | GLib.LogLevelFlags.FLAG_RECURSION, handler, None)


def parse_launch(description: str) -> Gst.Pipeline:
    """Build a pipeline from a gst-launch description.

    Raises:
        GstError: the description does not parse or names an unknown element.
    """
    init()
    try:
        element = Gst.parse_launch(description)
    except GLib.Error as error:
        raise GstError(f"cannot build pipeline: {error.message} (in {description!r})") from error
    if isinstance(element, Gst.Pipeline):
        return element
    pipeline = Gst.Pipeline.new(None)  # a description of one element parses to that element
    pipeline.add(element)
    return pipeline


def parse_bin(description: str, name: str, src_element: str) -> Gst.Bin:
    """Build a bin named `name` whose ``src`` ghost pad is the src pad of element `src_element`.

    Pads are ghosted explicitly: ghosting every unlinked pad at parse time would also ghost the
    sink pad waiting for a delayed link from a dynamic pad (decodebin), which then never links.

    Raises:
        GstError: the description does not parse or `src_element` is not in it.
    """
    init()
    try:
        bin_ = Gst.parse_bin_from_description(description, False)
    except GLib.Error as error:
        raise GstError(f"cannot build bin: {error.message} (in {description!r})") from error
    bin_.set_name(name)
    element = bin_.get_by_name(src_element)
    if element is None:
        raise GstError(f"bin {name!r}: no element named {src_element!r} in {description!r}")
    bin_.add_pad(Gst.GhostPad.new("src", element.get_static_pad("src")))
    return bin_


def error_text(message: Gst.Message) -> str:
    """One line for an ERROR or WARNING message: ``<element>: <message>``."""
    if message.type == Gst.MessageType.ERROR:
        error, _debug = message.parse_error()
    else:
        error, _debug = message.parse_warning()
    source = message.src.get_name() if message.src is not None else "pipeline"
    return f"{source}: {error.message}"


def pending_error(pipeline: Gst.Pipeline) -> str | None:
    """The first ERROR waiting on `pipeline`'s bus as one line (`error_text`), or None; no wait."""
    message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    return None if message is None else error_text(message)


_STREAM = "gst-stream-error-quark"
_RESOURCE = "gst-resource-error-quark"
_CORE = "gst-core-error-quark"
NOT_PLAYABLE = "not a playable video"
NO_DECODER = "no decoder for its format"
CANNOT_OPEN = "cannot open or connect"
ERROR_MEANINGS: dict[tuple[str, int], str] = {
    (_STREAM, int(Gst.StreamError.TYPE_NOT_FOUND)): "not a video",
    (_STREAM, int(Gst.StreamError.WRONG_TYPE)): "not a video",
    (_STREAM, int(Gst.StreamError.DEMUX)): NOT_PLAYABLE,
    (_STREAM, int(Gst.StreamError.DECODE)): NOT_PLAYABLE,
    (_STREAM, int(Gst.StreamError.FORMAT)): NOT_PLAYABLE,
    (_STREAM, int(Gst.StreamError.CODEC_NOT_FOUND)): NO_DECODER,
    (_CORE, int(Gst.CoreError.MISSING_PLUGIN)): NO_DECODER,
    (_RESOURCE, int(Gst.ResourceError.NOT_FOUND)): "not found",
    (_RESOURCE, int(Gst.ResourceError.OPEN_READ)): CANNOT_OPEN,
    (_RESOURCE, int(Gst.ResourceError.OPEN_READ_WRITE)): CANNOT_OPEN,
    (_RESOURCE, int(Gst.ResourceError.READ)): "lost (cannot read)",
    (_RESOURCE, int(Gst.ResourceError.BUSY)): "busy",
}
"""What a GStreamer error (domain, code) says about the input, in a user's words."""
FLOW_MEANINGS: dict[str, str] = {
    "reason not-linked": "no video stream in it",
    "reason not-negotiated": "its video cannot be converted to frames",
}
"""A demuxer's generic "Internal data stream error" by the flow return its debug text names."""


def failure_text(message: Gst.Message) -> str:
    """An ERROR message as one line about the input: what it means, then GStreamer's words.

    ``not a playable video (This file contains no playable streams)``; a resource error gives
    the reason from the debug text instead of the generic message (``cannot open or connect
    (Failed to connect. (Generic error))``). An error without a known meaning, such as one our
    own elements post, keeps the element's name: ``tpsperson0: <message>``.
    """
    error, debug = message.parse_error()
    meaning = ERROR_MEANINGS.get((error.domain, error.code))
    if meaning is None and error.matches(Gst.stream_error_quark(), Gst.StreamError.FAILED):
        flow = next((flow for flow in FLOW_MEANINGS if flow in (debug or "")), None)
        meaning = None if flow is None else FLOW_MEANINGS[flow]
    if meaning is None:
        return error_text(message)
    words = error.message.rstrip(".")
    if error.domain == _RESOURCE and debug and "\n" in debug:
        words = debug.rsplit("\n", 1)[1].strip() or words  # the element's own reason
    return f"{meaning} ({words})"


def _factory_name(element: Gst.Element) -> str | None:
    factory = element.get_factory()
    return None if factory is None else factory.get_name()


def _elements(bin_: Gst.Bin) -> list[Gst.Element]:
    """Every element inside `bin_`, at any depth; read again when the bin changes meanwhile (a
    decodebin adding what it plugs in)."""
    iterator = bin_.iterate_recurse()
    elements: list[Gst.Element] = []
    while True:
        result, element = iterator.next()
        if result == Gst.IteratorResult.OK:
            elements.append(element)
        elif result == Gst.IteratorResult.RESYNC:
            iterator.resync()
            elements.clear()
        else:
            return elements


def stalled_demuxer(pipeline: Gst.Bin) -> str | None:
    """The factory of a demuxer that has stopped while its decodebin exposed no stream, or None.

    decodebin swallows an error that its demuxer posts while decodebin is still setting that
    demuxer up (GStreamer 1.22; a cut MP4, in some runs at every start): no error reaches the
    bus and the pipeline waits for ever. A demuxer also stops for a moment at the end of a short
    file before decodebin exposes its streams, so a caller waits for this state to last.
    """
    for element in _elements(pipeline):
        if _factory_name(element) != "decodebin" or element.numsrcpads:
            continue
        for child in _elements(element):
            name = _factory_name(child)
            if name != "typefind" and any(
                pad.get_task_state() == Gst.TaskState.PAUSED for pad in child.sinkpads
            ):
                return name
    return None


def demuxer_error(path: Path, factory: str, timeout_s: float) -> Gst.Message | None:
    """The error demuxer `factory` posts on file `path` when it runs alone, outside decodebin:
    the error decodebin lost (`stalled_demuxer`). None when it ends or says nothing in time."""
    pipeline = parse_launch(f"filesrc location={quote(str(path))} ! {factory} ! fakesink")
    pipeline.set_state(Gst.State.PLAYING)
    try:
        message = wait_eos(pipeline, timeout_s)
    finally:
        pipeline.set_state(Gst.State.NULL)
    return message if message is not None and message.type == Gst.MessageType.ERROR else None


def post_error(element: Gst.Element, text: str, debug: str | None = None) -> None:
    """Post a stream error from `element` on its bus, as GST_ELEMENT_ERROR does in C."""
    error = GLib.Error.new_literal(Gst.stream_error_quark(), text, int(Gst.StreamError.FAILED))
    element.post_message(Gst.Message.new_error(element, error, debug or text))


def wait_eos(pipeline: Gst.Pipeline, timeout_s: float) -> Gst.Message | None:
    """The EOS or ERROR message that ends a playing `pipeline`, or None when neither comes within
    `timeout_s` seconds (0 only looks at what is waiting)."""
    return pipeline.get_bus().timed_pop_filtered(
        int(timeout_s * NS_PER_S), Gst.MessageType.EOS | Gst.MessageType.ERROR
    )


def run_until_eos(pipeline: Gst.Pipeline, timeout_s: float) -> None:
    """Play `pipeline` until end of stream; always leaves it in NULL.

    Raises:
        GstError: an element posts an error, or no EOS comes within `timeout_s` seconds.
    """
    try:
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            detail = pending_error(pipeline) or "state change failed"
            raise GstError(f"cannot start pipeline: {detail}")
        message = wait_eos(pipeline, timeout_s)
        if message is None:
            raise GstError(f"no end of stream within {timeout_s:g} s")
        if message.type == Gst.MessageType.ERROR:
            raise GstError(error_text(message))
    finally:
        pipeline.set_state(Gst.State.NULL)


def rgb_caps(width: int | None = None, height: int | None = None, fps: float | None = None) -> str:
    """Caps string for packed RGB; None leaves that field open.

    ``rgb_caps(320, 240, 30)`` -> ``video/x-raw,format=RGB,width=320,height=240,framerate=30/1``;
    fractional rates are kept exactly enough (29.97 -> 2997/100).
    """
    fields = [f"video/x-raw,format={RGB_FORMAT}"]
    if width is not None:
        fields.append(f"width={width}")
    if height is not None:
        fields.append(f"height={height}")
    if fps is not None:
        rate = Fraction(fps).limit_denominator(1001)
        fields.append(f"framerate={rate.numerator}/{rate.denominator}")
    return ",".join(fields)


def caps_size(caps: Gst.Caps) -> tuple[int, int]:
    """(width, height) of fixed video caps.

    Raises:
        GstError: the caps carry no integer width and height.
    """
    structure = caps.get_structure(0)
    ok_w, width = structure.get_int("width")
    ok_h, height = structure.get_int("height")
    if not (ok_w and ok_h):
        raise GstError(f"caps have no fixed size: {caps.to_string()}")
    return width, height


def quote(value: str) -> str:
    """`value` as a double-quoted gst-launch property value (paths with spaces, quotes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
