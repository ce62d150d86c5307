"""One stream's clip parsing: windows, per-person tracks, running decisions, the whole stream.

`ClipWindowing` is how the windows of one ensemble slide and decide (the window geometry, one due
clip into the causal running average, a window's whole-stream decision). `ClipStream` applies it
to a stream frame by frame: one window for the whole frame, or (for CSNs trained on person clips,
or on request) one per IoU track on crops around the person, the stream's decision then averaging
the tracks'. Each frame's humans carry the state of their part types from the latest decision.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from parsing.clip_parser import ClipEnsemble, ClipParser, ClipWindow, Decision, average
from parsing.inputs import person_clip_crops
from parsing.results import ClipResult, HumanResult, PartResult
from parsing.settings import TrackWeights
from parsing.tracker import IouTracker
from tps.labels import PriorTable
from tps.vocabulary import part_type


@dataclass(frozen=True)
class ClipWindowing:
    """The window settings of one ensemble, shared by the live parser and the naive benchmark.

    Attributes:
        ensemble: the CSN ensemble that classifies the clips.
        hop, average_clips: see `ClipWindow`.
        frame_stride: take every n-th frame; 0 or None: as the networks were trained.
        final_clips: clips of a window's whole-stream decision; 0: none (windows keep no history).
        track_weights: how a stream's decision weighs its tracks' windows (`ClipSettings`).
    """

    ensemble: ClipEnsemble
    hop: int
    frame_stride: int | None
    average_clips: int
    final_clips: int
    track_weights: TrackWeights = "equal"

    def window(self, short_side: int | None = None) -> ClipWindow:
        """A new window with the ensemble's clip geometry (`short_side` None: as trained)."""
        return ClipWindow(
            self.ensemble.clip_len,
            self.ensemble.crop_size,
            short_side=short_side or self.ensemble.short_side,
            frame_stride=self.frame_stride or self.ensemble.frame_stride,
            hop=self.hop,
            average_clips=self.average_clips,
            keep_all=self.final_clips > 0,
        )

    def decide(self, window: ClipWindow, clip: np.ndarray) -> Decision:
        """Classify one (T, S, S, 3) clip; the window's causal running average of its decisions."""
        return window.add(self.ensemble(clip[None])[0])

    def combine(self, windows: Sequence[ClipWindow], decisions: Sequence[Decision]) -> Decision:
        """One decision from the windows' decisions, weighed as `track_weights` says."""
        if self.track_weights == "frames":
            return average(decisions, [window.frames_seen for window in windows])
        return average(decisions)

    def whole(self, window: ClipWindow) -> Decision | None:
        """The window's decision from `final_clips` evenly spread clips; None if it saw no frame."""
        clips = window.finish(self.final_clips)
        return None if clips is None else average(self.ensemble(clips))


def with_state(human: HumanResult, clip: ClipResult | None, track_id: int | None) -> HumanResult:
    """`human` under `track_id`, each part carrying the state of its part type from `clip`."""
    parts = human.parts
    if clip is not None:
        parts = {
            name: PartResult(
                part.box,
                part.score,
                clip.part_states[part_type(name)].state,
                clip.part_states[part_type(name)].score,
            )
            for name, part in human.parts.items()
        }
    return HumanResult(human.box, human.score, human.keypoints, parts, track_id)


@dataclass(frozen=True)
class ClipFrame:
    """What one frame brings.

    Attributes:
        decided: the decisions taken at this frame (per track first, then the stream's).
        humans: the frame's humans with their track ids and part states.
        latest: the stream's latest decision (None before the first clip).
    """

    decided: tuple[ClipResult, ...]
    humans: tuple[HumanResult, ...]
    latest: ClipResult | None


class ClipStream:
    """The clip parser of one stream, fed one frame at a time.

    Args:
        windowing: the ensemble and its window settings.
        prior: given, part states come from the prior table instead of the part heads.
        track: classify per person even if the networks were trained on whole frames.
    """

    def __init__(
        self, windowing: ClipWindowing, prior: PriorTable | None = None, *, track: bool = False
    ) -> None:
        self.windowing = windowing
        self.parser = ClipParser(windowing.ensemble, prior)
        self.per_person = track or windowing.ensemble.clips == "person"
        self.window = None if self.per_person else windowing.window()
        self.latest: ClipResult | None = None
        self.stream = ""
        self.tracker = IouTracker()
        self.track_windows: dict[int, ClipWindow] = {}
        self.track_decisions: dict[int, Decision] = {}
        self.track_latest: dict[int, ClipResult] = {}
        self.ended_windows: list[ClipWindow] = []

    def push(
        self, stream: str, frame_index: int, frame_rgb: np.ndarray, humans: Sequence[HumanResult]
    ) -> ClipFrame:
        """Add one (H, W, 3) uint8 RGB frame of `stream` with its humans; classify what is due."""
        self.stream = stream
        decided: list[ClipResult] = []
        if self.per_person:
            track_ids, per_human = self._tracks(frame_index, frame_rgb, humans, decided)
        else:
            clip = self.window.push(frame_index, frame_rgb)
            if clip is not None:
                decision = self.windowing.decide(self.window, clip)
                self.latest = self._result(decision, self.window.window_start(), frame_index)
                decided.append(self.latest)
            track_ids, per_human = [None] * len(humans), [self.latest] * len(humans)
        states = tuple(
            with_state(human, clip_result, track_id)
            for human, clip_result, track_id in zip(humans, per_human, track_ids, strict=True)
        )
        return ClipFrame(tuple(decided), states, self.latest)

    def _result(
        self, decision: Decision, start: int, end: int, track_id: int | None = None
    ) -> ClipResult:
        result = self.parser.result(decision, self.stream, start, end, time.time_ns())
        return result if track_id is None else dataclasses.replace(result, track_id=track_id)

    def _tracks(
        self,
        frame_index: int,
        frame_rgb: np.ndarray,
        humans: Sequence[HumanResult],
        decided: list[ClipResult],
    ) -> tuple[list[int | None], list[ClipResult | None]]:
        """Per-person clips: track, crop, classify; the stream's decision averages the tracks."""
        boxes = np.array([human.box for human in humans], dtype=np.float32).reshape(-1, 4)
        ids = self.tracker.update(boxes)
        live = {track.track_id for track in self.tracker.tracks}
        for gone in set(self.track_windows) - live:
            window = self.track_windows.pop(gone)
            if window.all_frames:
                self.ended_windows.append(window)
            self.track_decisions.pop(gone, None)
            self.track_latest.pop(gone, None)
        size = self.windowing.ensemble.crop_size
        crops = person_clip_crops(frame_rgb, boxes, size) if len(boxes) else []
        for track_id, crop in zip(ids, crops, strict=True):
            window = self.track_windows.get(track_id)
            if window is None:
                window = self.windowing.window(short_side=size)
                self.track_windows[track_id] = window
            clip = window.push(frame_index, crop)
            if clip is not None:
                decision = self.windowing.decide(window, clip)
                self.track_decisions[track_id] = decision
                self.track_latest[track_id] = self._result(
                    decision, window.window_start(), frame_index, track_id
                )
                decided.append(self.track_latest[track_id])
        if decided:
            start = min(result.start_frame for result in decided)
            tracks = list(self.track_decisions)
            decision = self.windowing.combine(
                [self.track_windows[track_id] for track_id in tracks],
                [self.track_decisions[track_id] for track_id in tracks],
            )
            self.latest = self._result(decision, start, frame_index)
            decided.append(self.latest)
        return list(ids), [self.track_latest.get(track_id, self.latest) for track_id in ids]

    def finish(self) -> ClipResult | None:
        """The whole-stream decision from evenly spread clips of every window (the report's
        test protocol); None with `final_clips` 0 or no frame seen."""
        if self.windowing.final_clips <= 0:
            return None
        windows = (
            [*self.ended_windows, *self.track_windows.values()]
            if self.per_person
            else [self.window]
        )
        decided = [(window, self.windowing.whole(window)) for window in windows]
        decided = [(window, decision) for window, decision in decided if decision is not None]
        if not decided:
            return None
        first = min(window.first_index or 0 for window in windows if window.first_index is not None)
        last = max(window.last_index for window in windows)
        seen, decisions = zip(*decided, strict=True)
        return self._result(self.windowing.combine(seen, decisions), first, last)
