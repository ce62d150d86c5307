"""The element base, frame mapping, side table and `tpsstamp`: stages alone, then real GStreamer."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import gi
import numpy as np
import pytest

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402, F401 - GstApp gives appsink its methods

from media.frames import FrameError, map_rgb, rgb_stride  # noqa: E402
from plugins.context import ProcessContext, current_context  # noqa: E402
from plugins.element import (  # noqa: E402
    ElementError,
    ElementSpec,
    FrameContext,
    Prop,
    register_elements,
)
from plugins.frames import FrameTable  # noqa: E402
from plugins.gate import FairGate  # noqa: E402
from plugins.hooks import Hooks  # noqa: E402
from plugins.stamp import LOST_AFTER_S, STAMP, StampStage  # noqa: E402

TIMEOUT_S = 20
"""The first gst-launch run scans every installed plugin into a fresh registry."""
POLL_NS = 100_000_000
PAINT = (1, 2, 3)


def _frame(pts_ns: int | None, rgb: np.ndarray | None = None) -> FrameContext:
    rgb = np.zeros((4, 6, 3), np.uint8) if rgb is None else rgb
    return FrameContext("", None, pts_ns, rgb.shape[1], rgb.shape[0], rgb, None)


# -- stages and tables without GStreamer ------------------------------------------------------


def test_stamp_stage_numbers_frames_into_the_table() -> None:
    table = FrameTable()
    stage = StampStage("cam0", table, FairGate(), Hooks())
    stage.start()
    frames = [_frame(pts) for pts in (0, 40, 80)]
    for frame in frames:
        stage.process(frame)
    assert [f.frame_index for f in frames] == [0, 1, 2]
    assert table.get("cam0", 1) is frames[1].record
    assert frames[2].record.frame_index == 2 and frames[2].record.pts_ns == 80
    stage.stop()
    assert len(table) == 0


def test_stamp_stage_drops_frames_while_too_many_are_in_flight() -> None:
    table = FrameTable()
    stage = StampStage("cam0", table, FairGate(), Hooks(), max_in_flight=2)
    stage.start()
    frames = [_frame(pts) for pts in (0, 40, 80, 120)]
    for frame in frames[:3]:
        stage.process(frame)
    assert [f.drop for f in frames[:3]] == [False, False, True]
    assert frames[2].record is None and table.in_flight("cam0") == 2
    table.release("cam0", 0)  # the first frame's event went out: room for one more
    stage.process(frames[3])
    assert not frames[3].drop
    assert frames[3].frame_index == 3  # dropped frames keep their place in the numbering
    table.open("cam1", 0, 0)  # the bound holds over every stream of the table
    other = _frame(160)
    stage.process(other)
    assert other.drop and table.in_flight() == 3
    for record in (frames[1].record, frames[3].record):  # lost long ago: they stop counting
        record.opened_ns -= int(LOST_AFTER_S * 2e9)
    assert table.in_flight() == 3 and table.in_flight(within_s=LOST_AFTER_S) == 1
    late = _frame(200)
    stage.process(late)
    assert not late.drop


def test_a_free_place_goes_to_the_stream_served_longest_ago() -> None:
    table, gate = FrameTable(), FairGate()
    a, b = (StampStage(name, table, gate, Hooks(), max_in_flight=1) for name in ("a", "b"))
    first = _frame(0)
    a.process(first)
    late_b = _frame(0)
    b.process(late_b)  # no room: dropped, but b has offered and waits for its turn
    assert not first.drop and late_b.drop
    table.release("a", 0)
    again = _frame(40)
    a.process(again)  # room, but b was never served: a's frame gives way
    assert again.drop
    turn = _frame(40)
    b.process(turn)
    assert not turn.drop and table.in_flight() == 1
    table.release("b", 1)  # b's second frame: its first was dropped
    a_turn, b_again = _frame(80), _frame(80)
    b.process(b_again)  # b was served more recently than a
    a.process(a_turn)
    assert b_again.drop and not a_turn.drop


def test_stamp_stage_numbers_frames_whatever_their_pts() -> None:
    table = FrameTable()
    stage = StampStage("cam0", table, FairGate(), Hooks())
    stage.start()
    frames = [_frame(pts) for pts in (0, 40, 40, None, 80)]  # B-frame pairs, a missing PTS
    for frame in frames:
        stage.process(frame)
    assert [f.frame_index for f in frames] == [0, 1, 2, 3, 4]
    assert [table.get("cam0", i) for i in range(5)] == [f.record for f in frames]
    assert table.in_flight("cam0") == 5 and frames[3].record.pts_ns is None


def test_frame_table_evicts_by_age_and_capacity() -> None:
    table = FrameTable(max_age_frames=3, max_records=5)
    for index in range(5):
        table.open("a", index, index * 10)
    kept = [table.get("a", i) is not None for i in range(5)]
    assert kept == [False, False, True, True, True]  # age: 3 frames of the stream
    for index in range(4):
        table.open("b", index, index)
    assert len(table) == 5
    assert table.get("a", 2) is None  # capacity: the oldest record of any stream goes first
    assert table.get("a", 3) is not None
    assert table.get("b", 0) is None  # age, within stream b
    assert table.evicted == 4
    assert (table.in_flight("a"), table.in_flight("b")) == (2, 3)  # evicted ones are not in flight
    assert table.release("b", 3).frame_index == 3
    assert table.release("b", 3) is None
    table.open("b", 2, 2)  # reopening a frame replaces its record
    assert table.in_flight("b") == 2
    table.clear("b")
    assert len(table) == 2
    assert (table.in_flight("a"), table.in_flight("b")) == (2, 0)


def test_frame_table_is_thread_safe() -> None:
    table = FrameTable(max_age_frames=10, max_records=100)
    streams = [f"s{i}" for i in range(4)]

    def work(stream: str) -> None:
        for index in range(500):
            table.open(stream, index, index)
            table.get(stream, index - 1)
            if index % 2:
                table.release(stream, index)

    threads = [threading.Thread(target=work, args=(stream,)) for stream in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert len(table) <= 4 * 5  # per stream: even indices within the last 10 frames
    assert {table.get(stream, 498).frame_index for stream in streams} == {498}


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        pytest.param({"name": "Tps_bad"}, "does not match", id="element-name"),
        pytest.param(
            {"properties": (Prop("a", int, 0, "a"), Prop("a", int, 0, "a"))},
            "duplicate property",
            id="duplicate",
        ),
        pytest.param({"properties": (Prop("a", list, None, "a"),)}, "has type list", id="type"),
        pytest.param({"announces_stream": True}, "no 'stream'", id="announce"),
    ],
)
def test_element_spec_rejects_malformed(kwargs: dict[str, Any], problem: str) -> None:
    fields = {"name": "tpsok", "summary": "s", "stage_factory": lambda values, ctx: None} | kwargs
    with pytest.raises(ElementError, match=problem):
        ElementSpec(**fields)


# -- frames in real buffers -------------------------------------------------------------------


def _pull_one(description: str) -> Gst.Sample:
    Gst.init(None)
    pipeline = Gst.parse_launch(f"{description} ! appsink name=out sync=false")
    pipeline.set_state(Gst.State.PLAYING)
    try:
        sample = pipeline.get_by_name("out").try_pull_sample(TIMEOUT_S * Gst.SECOND)
        assert sample is not None
        return sample
    finally:
        pipeline.set_state(Gst.State.NULL)


@pytest.mark.parametrize(("width", "height"), [(325, 243), (320, 240), (5, 3)])
def test_map_rgb_honours_row_padding(width: int, height: int) -> None:
    sample = _pull_one(
        "videotestsrc pattern=solid-color foreground-color=0xff336699 num-buffers=1"
        f" ! video/x-raw,format=RGB,width={width},height={height}"
    )
    buffer = sample.get_buffer()
    assert buffer.get_size() == rgb_stride(width) * height
    with map_rgb(buffer, width, height) as rgb:
        assert rgb.shape == (height, width, 3)
        assert not rgb.flags.writeable
        assert (rgb == np.array([0x33, 0x66, 0x99], np.uint8)).all()


def test_map_rgb_rejects_short_buffers_and_writes_through() -> None:
    buffer = Gst.Buffer.new_wrapped(bytes(rgb_stride(5) * 3))
    with pytest.raises(FrameError, match="needs 63 bytes, got 48"), map_rgb(buffer, 5, 4):
        pass
    with map_rgb(buffer, 5, 3, writable=True) as rgb:
        rgb[2, 4] = PAINT
    with map_rgb(buffer, 5, 3) as rgb:
        assert rgb[2, 4].tolist() == list(PAINT) and int(rgb.sum()) == sum(PAINT)


# -- elements in real pipelines ---------------------------------------------------------------


class RecordingStage:
    """Records what it sees; paints the top-left pixel; fails on request."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)
        self.seen: list[tuple[str, int | None, int | None, tuple[int, ...]]] = []
        self.stopped = False
        self.finished = False

    def start(self) -> None:
        if self.values["fail_at"] == -1:
            raise RuntimeError("model file missing")

    def process(self, frame: FrameContext) -> None:
        if frame.frame_index == self.values["fail_at"]:
            raise ValueError("bad frame")
        self.seen.append((frame.stream, frame.frame_index, frame.pts_ns, frame.rgb.shape))
        assert frame.record is not None
        frame.rgb[0, 0] = PAINT

    def finish(self) -> None:
        self.finished = True

    def stop(self) -> None:
        self.stopped = True


STAGES: dict[str, RecordingStage] = {}


def _recording_stage(values: Mapping[str, Any], _context: ProcessContext) -> RecordingStage:
    STAGES[values["label"]] = stage = RecordingStage(values)
    return stage


RECORDER = ElementSpec(
    name="tpstestrecorder",
    summary="test stage recorder",
    stage_factory=_recording_stage,
    properties=(
        Prop("label", str, None, "key of the stage in STAGES", required=True),
        Prop("fail-at", int, -2, "frame index to fail at (-1: at start)", minimum=-2),
        Prop("gain", float, 1.0, "unused float", minimum=0.0, maximum=10.0),
        Prop("flag", bool, False, "unused bool"),
    ),
    writable=True,
)


@pytest.fixture(scope="module")
def elements() -> list[str]:
    return register_elements([STAMP, RECORDER])


def _run(description: str) -> tuple[Gst.Message | None, list[np.ndarray]]:
    """Play a line ending in ``appsink name=out``; returns the ending bus message and the frames."""
    pipeline = Gst.parse_launch(f"{description} ! appsink name=out sync=false")
    sink = pipeline.get_by_name("out")
    frames: list[np.ndarray] = []

    def pull(timeout_ns: int) -> bool:
        sample = sink.try_pull_sample(timeout_ns)
        if sample is None:
            return False
        caps = sample.get_caps().get_structure(0)
        width, height = caps.get_int("width")[1], caps.get_int("height")[1]
        with map_rgb(sample.get_buffer(), width, height) as rgb:
            frames.append(rgb.copy())
        return True

    bus = pipeline.get_bus()
    try:
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            return bus.pop_filtered(Gst.MessageType.ERROR), frames
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if pull(POLL_NS):
                continue
            message = bus.pop_filtered(Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if message is not None:
                while pull(0):  # samples still queued in the appsink at EOS
                    pass
                return message, frames
        return None, frames
    finally:
        pipeline.set_state(Gst.State.NULL)


SOURCE = "videotestsrc num-buffers=4 ! video/x-raw,format=RGB,width=33,height=20,framerate=10/1"


def test_register_elements_is_idempotent(elements: list[str]) -> None:
    assert elements == ["tpsstamp", "tpstestrecorder"]
    assert register_elements([STAMP, RECORDER]) == elements
    assert "tpsstamp" in register_elements()  # the catalogue


def test_properties_are_derived_from_the_table(elements: list[str]) -> None:
    element = Gst.ElementFactory.make("tpstestrecorder")
    names = {spec.name for spec in element.list_properties()}
    assert {"label", "fail-at", "gain", "flag"} <= names
    assert element.get_property("gain") == 1.0 and element.get_property("label") is None
    element.set_property("gain", 2.5)
    element.set_property("flag", True)
    assert element.get_property("gain") == 2.5 and element.get_property("flag") is True
    pspec = element.find_property("gain")
    assert (pspec.minimum, pspec.maximum) == (0.0, 10.0)


def test_stamp_then_stage_see_stream_index_and_pts(elements: list[str]) -> None:
    message, frames = _run(f"{SOURCE} ! tpsstamp stream=cam3 ! queue ! tpstestrecorder label=a")
    assert message is not None and message.type == Gst.MessageType.EOS
    stage = STAGES["a"]
    assert stage.seen == [("cam3", i, i * 100_000_000, (20, 33, 3)) for i in range(4)]
    assert stage.stopped
    assert [frame[0, 0].tolist() for frame in frames] == [
        list(PAINT)
    ] * 4  # writes reach downstream
    assert len(current_context().table) == 0  # stamp cleared its stream on stop


def test_missing_required_property_is_a_bus_error(elements: list[str]) -> None:
    message, _ = _run(f"{SOURCE} ! tpsstamp")
    assert message is not None and message.type == Gst.MessageType.ERROR
    error, _debug = message.parse_error()
    assert error.message == "required properties not set: stream"
    assert message.src.get_name().startswith("tpsstamp")


@pytest.mark.parametrize(
    ("fail_at", "expected"),
    [
        pytest.param(-1, "cannot start: model file missing", id="start"),
        pytest.param(2, "frame at pts 200000000 of stream 'cam1': bad frame", id="frame"),
    ],
)
def test_stage_failures_are_bus_errors(elements: list[str], fail_at: int, expected: str) -> None:
    label = f"fail{fail_at}"
    line = f"{SOURCE} ! tpsstamp stream=cam1 ! tpstestrecorder label={label} fail-at={fail_at}"
    message, frames = _run(line)
    assert message is not None and message.type == Gst.MessageType.ERROR
    assert message.parse_error()[0].message == expected
    assert len(frames) == max(fail_at, 0)


def test_gst_launch_finds_our_elements_through_the_loader(gst_launch) -> None:
    ok = gst_launch(f"{SOURCE} ! tpsstamp stream=cam0 ! fakesink")
    assert ok.returncode == 0, ok.stderr
    failed = gst_launch(f"{SOURCE} ! tpsstamp ! fakesink")
    assert failed.returncode != 0
    assert "required properties not set: stream" in failed.stderr
