"""Event schema v1: results -> msgpack payloads on topics, and back.

Every event is a msgpack map with ``"v": 1`` and ``"type"`` (``frame``, ``clip`` or ``status``),
sent as the ZeroMQ multipart message ``[topic, payload]`` with the topic ``tps/<stream>/<type>``.
docs/EVENTS.md documents every field and docs/events.schema.json (JSON Schema draft 2020-12) is the
contract that `validate` checks.

``seq`` counts the events of one type on one stream from 0, so a subscriber of any topic sees a gap
in ``seq`` exactly when it missed an event of that topic. `EventSequencer` assigns it,
thread-safely.

Example:
    >>> sequencer = EventSequencer()
    >>> topic, event = sequencer.build(StreamStatus("cam0", "playing", "", 1))
    >>> topic, event["seq"], decode(encode(event)) == event
    ('tps/cam0/status', 0, True)
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from parsing.results import (
    ClipResult,
    FrameResult,
    HumanResult,
    PartResult,
    PartState,
    StreamStatus,
)

EVENT_VERSION = 1
EVENT_TYPES: tuple[str, ...] = ("frame", "clip", "status")
TOPIC_ROOT = "tps"
STREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""Stream ids are topic segments and video names: letters, digits, ``_ . -``; no ``/``."""

MAX_MESSAGE_CHARS = 160
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "events.schema.json"

Event = dict[str, Any]


class EventError(Exception):
    """An event, topic or payload does not follow the event schema."""


def topic(stream: str, event_type: str) -> str:
    """The topic of an event: ``tps/<stream>/<event_type>``.

    Raises:
        EventError: the stream id is not a valid topic segment, or the type is unknown.
    """
    if not STREAM_ID.fullmatch(stream):
        raise EventError(
            f"stream id {stream!r}: expected letters, digits, '_', '.', '-' "
            f"(starting with a letter or digit)"
        )
    if event_type not in EVENT_TYPES:
        raise EventError(f"event type {event_type!r}: expected one of {EVENT_TYPES}")
    return f"{TOPIC_ROOT}/{stream}/{event_type}"


def parse_topic(text: str) -> tuple[str, str]:
    """``tps/<stream>/<type>`` -> ``(stream, type)``; raises EventError for anything else."""
    parts = text.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT:
        raise EventError(f"topic {text!r}: expected {TOPIC_ROOT}/<stream>/<type>")
    topic(parts[1], parts[2])  # validates both segments
    return parts[1], parts[2]


# The builders below copy the results' plain values as they are (`parsing.results` promises
# Python ints, floats and strings; `encode` still takes numpy scalars): a per-value float() walk
# cost more than encoding the event.


def _part_states(part_states: Mapping[str, PartState]) -> dict[str, dict[str, Any]]:
    return {
        part_type: {"state": decision.state, "score": decision.score}
        for part_type, decision in part_states.items()
    }


def _part(part: PartResult) -> dict[str, Any]:
    return {
        "box": list(part.box),
        "score": part.score,
        "state": part.state,
        "state_score": part.state_score,
    }


def _human(human: HumanResult) -> dict[str, Any]:
    return {
        "track_id": human.track_id,
        "box": list(human.box),
        "score": human.score,
        "keypoints": list(map(list, human.keypoints)),
        "parts": {name: _part(part) for name, part in human.parts.items()},
    }


def _clip_decision(clip: ClipResult) -> dict[str, Any]:
    """The fields a clip event and a frame's ``latest_clip`` share."""
    return {
        "start_frame": clip.start_frame,
        "end_frame": clip.end_frame,
        "track_id": clip.track_id,
        "part_states": _part_states(clip.part_states),
    }


def frame_event(result: FrameResult, seq: int) -> Event:
    """The ``frame`` event of a frame result; `seq` is its number among this stream's frames."""
    latest = None
    if result.latest_clip is not None:
        clip = result.latest_clip
        latest = _clip_decision(clip) | {"action": {"label": clip.label, "score": clip.score}}
    return {
        "v": EVENT_VERSION,
        "type": "frame",
        "stream": result.stream,
        "seq": seq,
        "frame_index": result.frame_index,
        "pts_ns": result.pts_ns,
        "wall_ns": result.wall_ns,
        "width": result.width,
        "height": result.height,
        "humans": [_human(human) for human in result.humans],
        "latest_clip": latest,
        "model_set": result.model_set,
    }


def clip_event(result: ClipResult, seq: int) -> Event:
    """The ``clip`` event of a clip decision; `seq` is its number among this stream's clips."""
    return {
        "v": EVENT_VERSION,
        "type": "clip",
        "stream": result.stream,
        "seq": seq,
        "wall_ns": result.wall_ns,
        "action": {
            "label": result.label,
            "score": result.score,
            "top5": list(map(list, result.top5)),
        },
        "model_set": result.model_set,
    } | _clip_decision(result)


def status_event(status: StreamStatus, seq: int) -> Event:
    """The ``status`` event of a stream state change; `seq` counts this stream's status events."""
    return {
        "v": EVENT_VERSION,
        "type": "status",
        "stream": status.stream,
        "seq": seq,
        "state": status.state,
        "detail": status.detail,
        "wall_ns": status.wall_ns,
        "model_set": status.model_set,
        "networks": dict(status.networks) if status.networks else None,
    }


Result = FrameResult | ClipResult | StreamStatus

_BUILDERS = {
    FrameResult: ("frame", frame_event),
    ClipResult: ("clip", clip_event),
    StreamStatus: ("status", status_event),
}


class EventSequencer:
    """Builds events with ``seq`` numbered per (stream, type); safe to share between threads.

    One sequencer serves every stream of a pipeline: the GStreamer streaming threads of several
    streams call `build` concurrently, and the lock keeps each counter gap-free.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_seq: dict[tuple[str, str], int] = {}

    def build(self, result: Result) -> tuple[str, Event]:
        """``(topic, event)`` for a result, taking the next ``seq`` of its stream and type.

        Raises:
            EventError: the stream id is not valid in a topic.
        """
        event_type, builder = _BUILDERS[type(result)]
        event_topic = topic(result.stream, event_type)
        key = (result.stream, event_type)
        with self._lock:
            seq = self._next_seq.get(key, 0)
            self._next_seq[key] = seq + 1
        return event_topic, builder(result, seq)


def _plain(value: Any) -> Any:
    """msgpack's fallback for a type it cannot pack: numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} in an event")


def encode(event: Mapping[str, Any]) -> bytes:
    """msgpack bytes of an event (strings as str, binary as bin; floats as float64).

    Plain values are packed by msgpack's C code; a stray numpy scalar takes the `_plain` detour.
    """
    return msgpack.packb(event, use_bin_type=True, default=_plain)


def decode(payload: bytes) -> Event:
    """An event map from msgpack bytes, checking only the envelope (map, ``v``, ``type``).

    Raises:
        EventError: not msgpack, not a map, another schema version or an unknown type.
    """
    try:
        event = msgpack.unpackb(payload, raw=False)
    except (ValueError, msgpack.UnpackException) as error:
        raise EventError(f"event payload ({len(payload)} bytes): not msgpack ({error})") from error
    if not isinstance(event, dict):
        raise EventError(f"event payload: expected a msgpack map, got {type(event).__name__}")
    if event.get("v") != EVENT_VERSION:
        raise EventError(f"event version: expected {EVENT_VERSION}, got {event.get('v')!r}")
    if event.get("type") not in EVENT_TYPES:
        raise EventError(f"event type: expected one of {EVENT_TYPES}, got {event.get('type')!r}")
    return event


@functools.cache
def _schema_validator() -> Any:
    # jsonschema is a development dependency: only tests and tools validate, so import it here.
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(event: Mapping[str, Any]) -> None:
    """Check an event against docs/events.schema.json (for tests and tools, not the frame path).

    Raises:
        EventError: naming the first offending field and what the schema expected.
    """
    # The schema selects the event type's definition with if/then, so the first error is specific.
    error = next(iter(_schema_validator().iter_errors(event)), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "<root>"
        message = error.message
        if len(message) > MAX_MESSAGE_CHARS:  # jsonschema quotes whole arrays; keep one line short
            message = f"fails {error.validator!r}: {error.validator_value!r}"
        raise EventError(f"{event.get('type', '?')} event: {where}: {message}")
