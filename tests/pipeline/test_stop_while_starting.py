"""A stop that lands on a stream's attempt before its first frame: the stream ends stopped, at once.

A looped file starts a new attempt every loop, so a run's stop often lands on one that is still
starting. An end-of-stream sent there reaches the demuxer in mid-setup (GStreamer 1.22): in most
such starts the stream then ended in error ("typefind: Internal data stream error", "This file
contains no playable streams") or hung until the stop grace ran out.
"""

from __future__ import annotations

import time

from pipeline.runner import STOP_GRACE_S, Runner
from pipeline.supervision import SupervisedStream
from tests.pipeline.test_runner import free_endpoint, make_config

STREAMS = 3
RUNS = 3


class StopOnStart(Runner):
    """Asks itself to stop right after starting its last stream, before any frame is in."""

    stopped_at = 0.0

    def _start(self, slot: SupervisedStream) -> bool:
        started = super()._start(slot)
        if slot.index == len(self.config.sources) - 1:
            self.stopped_at = time.monotonic()
            self.stop()
        return started


def test_a_stop_before_the_first_frame_ends_looped_files_stopped_not_in_error(
    random_weights, shared_media
):
    clip = str(shared_media / "pose_demo.mp4")
    sources = [{"id": f"clip{i}", "uri": clip, "loop": True} for i in range(STREAMS)]
    for _ in range(RUNS):
        publish = {"endpoint": free_endpoint(), "wait_for_subscriber_s": 0}
        config = make_config(random_weights, sources, None, mode="live", publish=publish)
        runner = StopOnStart(config)
        report = runner.run()
        assert report.errors == {}
        assert report.states == {f"clip{i}": "stopped" for i in range(STREAMS)}
        # torn down at once: nothing waited out the stop grace
        assert time.monotonic() - runner.stopped_at < STOP_GRACE_S / 2
