"""The naive baseline: the loop a user writes without our pipeline, and the stage-only times.

One video after another: decode with the project's one decode loop (an ``appsink`` pulled
frame by frame, `pipeline.sources.iterate_frames`), then for every frame run the person
detector, the pose estimator, the part detector and (when a clip is due) the CSN ensemble, in
turn, one frame at a time, on the same networks and engine as the pipeline (the parsing core's
stage classes, loaded with `parsing.networks.load_network`, no micro-batcher, no GStreamer
elements, no events). The clip windows slide and decide as the pipeline's do
(`parsing.clip_stream.ClipWindowing`), over whole frames. At the end of each video the whole-video
decision is taken from evenly spread clips, as the pipeline's offline mode does.

The time spent inside the stage calls is the *stage-only* (model) time of those frames, which
the suite compares with the pipeline's end-to-end time (the glue overhead).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from parsing.clip_parser import ClipEnsemble
from parsing.clip_stream import ClipWindowing
from parsing.frame_parser import PartDetector, PersonDetector, PoseEstimator, humans
from parsing.networks import Network, load_network
from parsing.settings import NetworkSettings, ParserSettings
from pipeline.sources import iterate_frames

STAGES = ("person", "pose", "parts", "clip")


@dataclass
class NaiveTimes:
    """Seconds spent per stage over some frames, and in the whole loop.

    Attributes:
        frames: frames parsed.
        stage_s: seconds inside each stage's calls over those frames (see `STAGES`).
        final_clip_s: seconds of the end-of-video decisions (evenly spread clips).
        wall_s: wall seconds of the per-frame loops, decoding included, final decisions excluded.
        per_frame_model_s: each frame's seconds inside person + pose + parts (+ clip when due).
    """

    frames: int = 0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    final_clip_s: float = 0.0
    wall_s: float = 0.0
    per_frame_model_s: list[float] = field(default_factory=list)

    @property
    def model_s(self) -> float:
        """Seconds inside the per-frame stage calls (final decisions excluded)."""
        return sum(self.stage_s.values())


class NaiveParser:
    """The four stages called directly, one frame at a time, timing each call."""

    def __init__(self, settings: ParserSettings) -> None:
        self.networks: list[Network] = []
        person = self._load(settings.person)
        pose = self._load(settings.pose)
        clip = settings.clip
        csns = [self._load(network) for network in clip.networks]
        self.person = PersonDetector(person, settings.person)
        self.pose = PoseEstimator(pose, settings.pose)
        self.parts = PartDetector.load(settings.parts, self._load)
        self.windowing = ClipWindowing(
            ClipEnsemble(csns, [n.head_weights for n in clip.networks]),
            hop=clip.hop,
            frame_stride=clip.frame_stride,
            average_clips=clip.average_clips,
            final_clips=clip.average_clips,
            track_weights=clip.track_weights,
        )

    def _load(self, settings: NetworkSettings) -> Network:
        network = load_network(settings)
        self.networks.append(network)
        return network

    def close(self) -> None:
        """Release every engine."""
        for network in self.networks:
            network.engine.close()

    def parse_video(self, path: Path, times: NaiveTimes) -> None:
        """Parse every frame of `path`, adding its frames and seconds to `times`."""
        window = self.windowing.window()
        started = time.perf_counter()
        for index, _, frame_rgb in iterate_frames(str(path)):
            frame_s = 0.0
            tick = time.perf_counter()
            detections = self.person([frame_rgb])
            frame_s += self._add(times, "person", tick)
            tick = time.perf_counter()
            persons = self.pose([frame_rgb], detections)[0]
            frame_s += self._add(times, "pose", tick)
            tick = time.perf_counter()
            humans(persons, self.parts(frame_rgb, persons))
            frame_s += self._add(times, "parts", tick)
            tick = time.perf_counter()
            due = window.push(index, frame_rgb)
            if due is not None:
                self.windowing.decide(window, due)
            frame_s += self._add(times, "clip", tick)
            times.per_frame_model_s.append(frame_s)
            times.frames += 1
        times.wall_s += time.perf_counter() - started
        tick = time.perf_counter()
        self.windowing.whole(window)
        times.final_clip_s += time.perf_counter() - tick

    @staticmethod
    def _add(times: NaiveTimes, stage: str, tick: float) -> float:
        seconds = time.perf_counter() - tick
        times.stage_s[stage] += seconds
        return seconds


def run_naive(settings: ParserSettings, videos: Sequence[Path]) -> NaiveTimes:
    """Parse `videos` one after another with the naive loop; networks loaded before timing."""
    parser = NaiveParser(settings)
    times = NaiveTimes()
    try:
        for video in videos:
            parser.parse_video(video, times)
    finally:
        parser.close()
    return times
