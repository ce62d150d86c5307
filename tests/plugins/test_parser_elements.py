"""Our parser elements: through their stages without GStreamer, and in a gst-launch-1.0 line."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from parsing.events import validate
from parsing.results import FrameResult
from parsing.settings import ClipSettings, PartSettings, PersonSettings, PoseSettings
from plugins.board import Board
from plugins.clip import ClipStage
from plugins.element import FrameContext
from plugins.frames import FrameRecord
from plugins.overlay import OverlayStage
from plugins.parts import PartStage
from plugins.person import PersonStage
from plugins.pool import NetworkPool
from plugins.pose import PoseStage
from transport.zmq import EventSubscriber

WIDTH, HEIGHT = 160, 120


def _frame(index: int, record: FrameRecord, writable: bool = False) -> FrameContext:
    rgb = np.random.default_rng(index).integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)
    rgb.flags.writeable = writable
    return FrameContext("s", index, index * 1000, WIDTH, HEIGHT, rgb, record)


@pytest.fixture
def stages(random_weights):
    pool = NetworkPool()
    person = PersonStage(
        PersonSettings(weights=random_weights["person"], score_threshold=0.0, max_persons=2), pool
    )
    pose = PoseStage(PoseSettings(weights=random_weights["pose"], min_keypoint_score=0.0), pool)
    parts = PartStage(
        PartSettings(weights=random_weights["parts"], paint_min_score=0.0, score_threshold=0.0),
        pool,
    )
    clip_settings = ClipSettings(
        networks=[{"weights": random_weights["csn"]}],
        hop=2,
        frame_stride=1,
        average_clips=2,
        track=True,
    )
    clip = ClipStage(clip_settings, 3, pool, Board())
    chain = [person, pose, parts, clip, OverlayStage()]
    for stage in chain:
        stage.start()
    yield chain
    for stage in chain:
        stage.stop()
    pool.close()


def test_stages_fill_the_record_frame_by_frame(stages):
    person, pose, parts, clip, overlay = stages
    results: list[FrameResult] = []
    for index in range(6):
        record = FrameRecord("s", index, index * 1000)
        frame = _frame(index, record)
        for stage in (person, pose, parts, clip):
            stage.process(frame)
        assert len(record.detections) == 2
        assert record.persons.keypoints_xys.shape == (2, 17, 3)
        assert len(record.humans) == 2
        results.append(record.frame)
        drawn = _frame(index, record, writable=True)
        before = drawn.rgb.copy()
        overlay.process(drawn)
        assert (drawn.rgb != before).any(), "the overlay draws on the frame"
        decided = record.clips
        assert all(c.start_frame <= c.end_frame == index for c in decided)
    assert [r.frame_index for r in results] == list(range(6))
    assert results[0].latest_clip is None and results[-1].latest_clip is not None
    assert all(h.track_id is not None for r in results for h in r.humans)
    clip.finish()
    (final,) = clip.board.take("s")
    assert (final.start_frame, final.end_frame, final.track_id) == (0, 5, None)


def test_gst_launch_line_with_every_parser_element(random_weights, gst_launch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    subscriber = EventSubscriber(endpoint)
    events: list[dict] = []
    done = threading.Event()

    def collect() -> None:
        for _, event in subscriber.events(idle_timeout_s=60.0, limit=6):
            events.append(event)
        done.set()

    threading.Thread(target=collect, daemon=True).start()
    weights = {name: str(path) for name, path in random_weights.items()}
    line = (
        "videotestsrc num-buffers=6 ! video/x-raw,format=RGB,width=160,height=120,framerate=10/1"
        " ! tpsstamp stream=cam ! tpsperson weights={person} score-threshold=0.0"
        " ! tpspose weights={pose} ! tpsparts weights={parts}"
        ' ! tpsclip networks=[{{"weights":"{csn}"}}] hop=2'
        f" ! tpsoverlay ! tpspublish endpoint={endpoint} wait-for-subscriber=10 ! fakesink"
    ).format(**weights)
    result = gst_launch(line)
    assert result.returncode == 0, result.stderr
    assert done.wait(60), f"only {len(events)} events"
    frames = [e for e in events if e["type"] == "frame"]
    assert [e["frame_index"] for e in frames] == list(range(len(frames)))
    for event in events:
        validate(event)
    subscriber.close()
