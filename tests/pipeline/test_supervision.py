"""A stream's supervision with a real GStreamer pipeline: how much of its bus one round reads.

A start puts every element's state changes on the bus before the pipeline's own PLAYING. Read one
message a round, ``playing`` trailed the pipeline by tens of rounds of the loop (frames were
published before it, and a slow loop counted time already spent playing against the start timeout).
"""

from __future__ import annotations

import threading
from pathlib import Path

from media.gst import parse_launch
from pipeline import supervision
from pipeline.graph import StreamGraph
from pipeline.metrics import Metrics
from pipeline.supervision import BUS_DRAIN_MAX, BUS_MESSAGES, StreamContext, SupervisedStream
from plugins.hooks import Hooks
from plugins.sinks import EventSinks
from tests.pipeline.test_runner import free_endpoint, make_config

from gi.repository import Gst  # isort: skip  (media.gst has required the version)

STREAM = "bars"
URI = "synth://?frames=1"
LAUNCH = "videotestsrc ! queue ! videoconvert ! queue name=last ! fakesink async=false"
"""No element changes state asynchronously: once PLAYING is set, all 18 state changes wait."""
FLOOD_EXCESS = 3
"""Messages past the bound that a flooded bus still holds after one round."""


def waiting(bus: Gst.Bus) -> int:
    """Pop and count the watched messages waiting on `bus`."""
    count = 0
    while bus.timed_pop_filtered(0, BUS_MESSAGES) is not None:
        count += 1
    return count


def test_one_poll_handles_every_waiting_message_up_to_the_bound(tmp_path: Path, monkeypatch):
    weights = {
        role: tmp_path / f"{role}.safetensors" for role in ("person", "pose", "parts", "csn")
    }
    config = make_config(weights, [{"id": STREAM, "uri": URI}], None)
    pipeline = parse_launch(LAUNCH)
    monkeypatch.setattr(
        supervision, "build_stream", lambda *_args: StreamGraph(STREAM, URI, pipeline, LAUNCH, None)
    )
    statuses: list[str] = []
    sinks = EventSinks(Hooks())
    endpoint = free_endpoint()
    context = StreamContext(
        config,
        endpoint,
        sinks.open(endpoint),
        Metrics([STREAM]),
        threading.Event(),
        lambda _stream, state, _detail: statuses.append(state),
        {STREAM: 0},
        {},
    )
    slot = SupervisedStream(0, STREAM, context)
    bus = pipeline.get_bus()
    try:
        assert slot.start()
        assert statuses == ["starting"]
        slot.poll(0)
        assert statuses == ["starting", "playing"]
        assert waiting(bus) == 0
        # a flood (a child's state changes: no status) is read only up to the bound in one round
        last = pipeline.get_by_name("last")
        for _ in range(BUS_DRAIN_MAX + FLOOD_EXCESS):
            bus.post(
                Gst.Message.new_state_changed(
                    last, Gst.State.PAUSED, Gst.State.PLAYING, Gst.State.VOID_PENDING
                )
            )
        slot.poll(0)
        assert waiting(bus) == FLOOD_EXCESS
        assert statuses == ["starting", "playing"]
    finally:
        slot.teardown()
        sinks.close(endpoint)
