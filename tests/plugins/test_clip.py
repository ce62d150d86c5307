"""``tpsclip``'s stage: the clip parser's results filed in the side table and on the board."""

from __future__ import annotations

import numpy as np
import pytest

from parsing.results import FrameResult
from parsing.settings import ClipSettings
from plugins.board import Board
from plugins.clip import ClipStage
from plugins.element import FrameContext
from plugins.frames import FrameRecord
from plugins.pool import NetworkPool

WIDTH, HEIGHT = 64, 48
HOP = 2


@pytest.fixture(scope="module")
def pool():
    pool = NetworkPool()
    yield pool
    pool.close()


def _stage(csn, final_clips: int, pool: NetworkPool) -> ClipStage:
    networks = [{"weights": csn}]
    settings = ClipSettings(networks=networks, hop=HOP, frame_stride=1, average_clips=2)
    return ClipStage(settings, final_clips, pool, Board())


def _frame(index: int, record: FrameRecord | None) -> FrameContext:
    rgb = np.full((HEIGHT, WIDTH, 3), index, np.uint8)
    return FrameContext("cam", index, index * 1000, WIDTH, HEIGHT, rgb, record)


def test_every_frame_gets_its_result_and_the_stream_decision_is_posted(random_weights, pool):
    stage = _stage(random_weights["csn"], final_clips=3, pool=pool)
    stage.start()
    stage.process(_frame(0, None))  # no side-table record: nothing to file, no error
    records = [FrameRecord("cam", index, index * 1000) for index in range(6)]
    for record in records:
        stage.process(_frame(record.frame_index, record))
    results = [record.frame for record in records]
    assert all(isinstance(result, FrameResult) for result in results)
    assert [(r.stream, r.frame_index, r.width, r.height) for r in results] == [
        ("cam", index, WIDTH, HEIGHT) for index in range(6)
    ]
    decided = [index for index, record in enumerate(records) if record.clips]
    assert decided == [3, 5]  # 4-frame clips, then every hop
    assert results[-1].latest_clip is records[5].clips[0]
    stage.finish()
    (final,) = stage.board.take("cam")
    assert (final.stream, final.start_frame, final.end_frame) == ("cam", 0, 5)
    stage.stop()
    stage.finish()  # stopped: nothing more is posted
    assert stage.board.take("cam") == []


def test_no_final_clips_posts_nothing(random_weights, pool):
    stage = _stage(random_weights["csn"], final_clips=0, pool=pool)
    stage.start()
    for index in range(5):
        stage.process(_frame(index, FrameRecord("cam", index, index * 1000)))
    stage.finish()
    assert stage.board.take("cam") == []
    stage.stop()
