"""Event schema v1: results -> events -> msgpack -> events, checked against the JSON Schema."""

from __future__ import annotations

import copy
import json
import re
import threading

import msgpack
import numpy as np
import pytest

from parsing import events
from parsing.events import EventError, EventSequencer, decode, encode, validate
from parsing.results import (
    STREAM_STATES,
    ClipResult,
    FrameResult,
    HumanResult,
    PartResult,
    PartState,
    ResultError,
    StreamStatus,
)
from tps.vocabulary import PART_TYPES, PARTS

KEYPOINTS = tuple((10.0 + i, 20.0 + 2 * i, 0.5 + i / 40) for i in range(17))
STATES = {
    "head": "none",
    "hand": "hold",
    "arm": "bend",
    "hip": "none",
    "leg": "step",
    "foot": "jump",
}


def make_clip(stream: str = "cam0", track_id: int | None = None) -> ClipResult:
    return ClipResult(
        stream=stream,
        start_frame=0,
        end_frame=31,
        wall_ns=1_700_000_000_000_000_000,
        label="hurling_(sport)",
        score=0.8,
        top5=(("hurling_(sport)", 0.8), ("lunge", 0.1), ("capoeira", 0.05)),
        part_states={name: PartState(state, 0.6) for name, state in STATES.items()},
        track_id=track_id,
    )


def make_human(track_id: int | None = 7, state: str | None = "bend") -> HumanResult:
    score = None if state is None else 0.7
    return HumanResult(
        box=(5.0, 6.0, 120.5, 300.0),
        score=0.93,
        keypoints=KEYPOINTS,
        parts={
            "head": PartResult((40.0, 8.0, 70.0, 40.0), 0.9, state, score),
            "left_arm": PartResult((60.0, 50.0, 90.0, 140.0), 0.8, state, score),
        },
        track_id=track_id,
    )


def make_frame(latest_clip: ClipResult | None = None, **human: object) -> FrameResult:
    return FrameResult(
        stream="cam0",
        frame_index=10,
        pts_ns=333_333_333,
        wall_ns=1_700_000_000_000_000_001,
        width=640,
        height=480,
        humans=(make_human(**human), make_human(track_id=None)),
        latest_clip=latest_clip,
    )


RESULTS = [
    pytest.param(make_frame(), "frame", id="frame-before-first-clip"),
    pytest.param(make_frame(make_clip(), state=None), "frame", id="frame-with-clip-no-state"),
    pytest.param(FrameResult("cam0", 0, None, 1, 320, 240), "frame", id="frame-empty-without-pts"),
    pytest.param(make_clip(), "clip", id="clip"),
    pytest.param(make_clip(track_id=3), "clip", id="clip-of-a-track"),
    pytest.param(
        FrameResult("cam0", 3, 0, 1, 320, 240, model_set="real"), "frame", id="frame-of-real-set"
    ),
    *[
        pytest.param(StreamStatus("cam-0.a_b", state, "detail", 5), "status", id=f"status-{state}")
        for state in STREAM_STATES
    ],
    pytest.param(
        StreamStatus(
            "cam0",
            "starting",
            "",
            5,
            "mixed",
            (("person", "movenet_multipose_lightning"), ("clip", "ip_csn_152+ir_csn_152")),
        ),
        "status",
        id="status-with-models",
    ),
]


@pytest.mark.parametrize(("result", "event_type"), RESULTS)
def test_round_trip_is_exact_and_valid(result: object, event_type: str) -> None:
    topic, event = EventSequencer().build(result)
    assert topic == f"tps/{result.stream}/{event_type}"
    assert event["v"] == 1 and event["type"] == event_type and event["seq"] == 0
    validate(event)
    decoded = decode(encode(event))
    assert decoded == event
    validate(decoded)
    json.dumps(decoded)  # plain JSON types only


def test_frame_event_carries_results() -> None:
    clip = make_clip()
    _, event = EventSequencer().build(make_frame(clip))
    human = event["humans"][0]
    assert human["keypoints"] == [list(keypoint) for keypoint in KEYPOINTS]
    assert human["box"] == [5.0, 6.0, 120.5, 300.0]
    assert human["parts"]["left_arm"] == {
        "box": [60.0, 50.0, 90.0, 140.0],
        "score": 0.8,
        "state": "bend",
        "state_score": 0.7,
    }
    assert event["humans"][1]["track_id"] is None
    assert event["latest_clip"]["action"] == {"label": "hurling_(sport)", "score": 0.8}
    assert event["latest_clip"]["part_states"]["foot"] == {"state": "jump", "score": 0.6}


def test_numpy_values_encode_as_plain_numbers() -> None:
    keypoints_xys = np.arange(51, dtype=np.float32).reshape(17, 3) / 51
    human = HumanResult(
        box=tuple(np.array([1, 2, 3, 4], dtype=np.float32)),
        score=np.float32(0.5),
        keypoints=tuple(map(tuple, keypoints_xys)),
        track_id=np.int64(4),
    )
    _, event = EventSequencer().build(FrameResult("cam0", np.int64(5), None, 1, 8, 8, (human,)))
    decoded = decode(encode(event))
    validate(decoded)
    assert decoded["humans"][0]["keypoints"][16] == pytest.approx(keypoints_xys[16].tolist())
    assert decoded["humans"][0]["track_id"] == 4


def test_sequence_numbers_per_stream_and_type_under_threads() -> None:
    sequencer = EventSequencer()
    per_thread = 200
    seen: dict[tuple[str, str], list[int]] = {}
    lock = threading.Lock()

    def work(stream: str) -> None:
        for _ in range(per_thread):
            for result in (StreamStatus(stream, "playing", "", 1), make_clip(stream)):
                topic, event = sequencer.build(result)
                with lock:
                    seen.setdefault((stream, event["type"]), []).append(event["seq"])

    threads = [threading.Thread(target=work, args=(stream,)) for stream in ("a", "a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen["a", "status"]) == list(range(2 * per_thread))
    assert sorted(seen["b", "clip"]) == list(range(per_thread))
    assert sorted(seen["c", "status"]) == list(range(per_thread))


def test_schema_vocabulary_matches_tps_vocabulary() -> None:
    schema = json.loads(events.SCHEMA_PATH.read_text())
    definitions = schema["$defs"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert definitions["human"]["properties"]["parts"]["propertyNames"]["enum"] == list(PARTS)
    assert definitions["part_states"]["propertyNames"]["enum"] == list(PART_TYPES)
    assert definitions["status"]["properties"]["state"]["enum"] == list(STREAM_STATES)
    assert [rule["if"]["properties"]["type"]["const"] for rule in schema["allOf"]] == list(
        events.EVENT_TYPES
    )


def _frame_event() -> dict:
    return EventSequencer().build(make_frame(make_clip()))[1]


def _clip_event() -> dict:
    return EventSequencer().build(make_clip())[1]


def _status_event() -> dict:
    status = StreamStatus("cam0", "starting", "", 5, "real", (("pose", "movenet_lightning"),))
    return EventSequencer().build(status)[1]


def _unknown_model_set(event: dict) -> None:
    event["model_set"] = "imagenet"


def _unknown_role(event: dict) -> None:
    event["networks"]["tracker"] = "iou"


def _drop_keypoint(event: dict) -> None:
    event["humans"][0]["keypoints"].pop()


def _unknown_part(event: dict) -> None:
    event["humans"][0]["parts"]["tail"] = event["humans"][0]["parts"]["head"]


def _missing_part_type(event: dict) -> None:
    del event["part_states"]["foot"]


def _extra_field(event: dict) -> None:
    event["colour"] = "red"


def _score_above_one(event: dict) -> None:
    event["action"]["score"] = 1.5


def _slash_in_stream(event: dict) -> None:
    event["stream"] = "cam/0"


def _six_alternatives(event: dict) -> None:
    event["action"]["top5"] = [["lunge", 0.1]] * 6


@pytest.mark.parametrize(
    ("make", "spoil", "where"),
    [
        pytest.param(_frame_event, _drop_keypoint, "humans/0/keypoints", id="16-keypoints"),
        pytest.param(_frame_event, _unknown_part, "humans/0/parts", id="unknown-part"),
        pytest.param(_frame_event, _extra_field, "<root>", id="extra-field"),
        pytest.param(_frame_event, _unknown_model_set, "model_set", id="unknown-model-set"),
        pytest.param(_status_event, _unknown_role, "networks", id="unknown-network-role"),
        pytest.param(_clip_event, _missing_part_type, "part_states", id="missing-part-type"),
        pytest.param(_clip_event, _score_above_one, "action/score", id="score-above-one"),
        pytest.param(_clip_event, _slash_in_stream, "stream", id="slash-in-stream"),
        pytest.param(_clip_event, _six_alternatives, "action/top5", id="six-alternatives"),
    ],
)
def test_schema_rejects_malformed_events(make, spoil, where: str) -> None:
    event = make()
    validate(copy.deepcopy(event))
    spoil(event)
    with pytest.raises(EventError, match=f" event: {where}: ") as raised:
        validate(event)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(b"\xc1", "not msgpack", id="not-msgpack"),
        pytest.param(msgpack.packb([1, 2]), "expected a msgpack map", id="not-a-map"),
        pytest.param(msgpack.packb({"v": 2, "type": "frame"}), "version: expected 1", id="v2"),
        pytest.param(msgpack.packb({"v": 1, "type": "x"}), "type: expected one", id="bad-type"),
    ],
)
def test_decode_rejects_foreign_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message):
        decode(payload)


@pytest.mark.parametrize("stream", ["", "a/b", "-cam", "cam 0", "kamera\u00e9"])
def test_topic_rejects_bad_stream_ids(stream: str) -> None:
    with pytest.raises(EventError, match="stream id"):
        EventSequencer().build(StreamStatus(stream, "playing", "", 1))


def test_parse_topic() -> None:
    assert events.parse_topic("tps/cam0/clip") == ("cam0", "clip")
    with pytest.raises(EventError, match="expected tps/<stream>/<type>"):
        events.parse_topic("tps/cam0")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: HumanResult((0, 0, 1, 1), 1.0, KEYPOINTS[:16]), "expected 17", id="keypoints"
        ),
        pytest.param(
            lambda: HumanResult((0, 0, 1, 1), 1.0, KEYPOINTS, {"tail": None}),
            "unknown part names",
            id="part-name",
        ),
        pytest.param(lambda: PartResult((3, 0, 1, 1), 1.0), "x1 <= x2", id="box-order"),
        pytest.param(lambda: PartResult((0, 0, 1, 1), 1.0, "bend"), "both or neither", id="state"),
        pytest.param(
            lambda: ClipResult("s", 5, 4, 0, "lunge", 1.0, (("lunge", 1.0),), {}),
            "start_frame <= end_frame",
            id="clip-frames",
        ),
        pytest.param(
            lambda: ClipResult("s", 0, 4, 0, "lunge", 1.0, (("lunge", 1.0),), {}),
            "part types",
            id="clip-part-types",
        ),
        pytest.param(
            lambda: FrameResult("other", 0, None, 0, 1, 1, latest_clip=make_clip()),
            "expected stream 'other'",
            id="clip-of-another-stream",
        ),
        pytest.param(lambda: StreamStatus("s", "paused", "", 0), "stream state", id="state-name"),
    ],
)
def test_results_reject_malformed_values(build, message: str) -> None:
    with pytest.raises(ResultError, match=message):
        build()


def test_documented_example_is_valid() -> None:
    text = (events.SCHEMA_PATH.parent / "EVENTS.md").read_text()
    (example,) = re.findall(r"```json\n(.*?)```", text, re.S)
    validate(json.loads(example))
