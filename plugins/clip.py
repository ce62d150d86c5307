"""``tpsclip``: the sliding clip buffer and the CSN heads; part states attached to every frame.

Each frame goes into its stream's window (and, with `track=true`, into its person's window);
when a clip is due the CSN ensemble classifies it and the causal running average over the last
`average-clips` decisions gives the action and the state of each part type. The frame's final
`FrameResult` carries the latest decision. At end-of-stream, with `final-clips > 0`, the whole
stream is classified once more from clips spread evenly over it (the report's 7-clip test
protocol) and that decision is posted for the publisher.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parsing.clip_parser import ClipEnsemble, ClipParser, ClipWindow, Decision, average
from parsing.inputs import person_clip_crops
from parsing.results import ClipResult, FrameResult, HumanResult, PartResult
from parsing.settings import ClipNetworkSettings
from parsing.tracker import IouTracker
from plugins import board
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.parts import HUMANS
from plugins.pool import default_pool
from tps.labels import PriorTable
from tps.vocabulary import part_type

CLIP = "clip"
"""Side-table key: the `ClipResult`s decided at this frame (stream-wide and per track)."""
FRAME = "frame"
"""Side-table key: the frame's final `FrameResult`, with part states."""


def with_states(
    humans: Sequence[HumanResult], clip: ClipResult | None, track_ids: Sequence[int | None]
) -> tuple[HumanResult, ...]:
    """Humans whose parts carry the state of their part type from `clip` (if any)."""
    results = []
    for human, track_id in zip(humans, track_ids, strict=True):
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
        results.append(HumanResult(human.box, human.score, human.keypoints, parts, track_id))
    return tuple(results)


class ClipStage:
    """Windows, decisions and the frame results of one stream.

    Args:
        settings: the CSN networks and their per-head weights.
        hop, frame_stride, average_clips: window settings (see `ClipWindow`).
        final_clips: clips of the whole-stream decision at end-of-stream; 0 disables it.
        prior: prior table JSON; given, part states come from it instead of the part heads.
        track: also classify per person (IoU tracks, crops around the person).
    """

    def __init__(
        self,
        settings: Sequence[ClipNetworkSettings],
        *,
        hop: int,
        frame_stride: int,
        average_clips: int,
        final_clips: int,
        prior: Path | None,
        track: bool,
    ) -> None:
        self.settings = list(settings)
        self.hop, self.frame_stride, self.average_clips = hop, frame_stride, average_clips
        self.final_clips, self.prior_path, self.track = final_clips, prior, track
        self.parser: ClipParser | None = None
        self.stream = ""

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> ClipStage:
        weights = [Path(path) for path in str(values["weights"]).split(",") if path]
        head_weights = json.loads(values["head_weights"] or "[]") or [{}] * len(weights)
        if len(head_weights) != len(weights):
            raise ValueError(
                f"head-weights has {len(head_weights)} entries, weights has {len(weights)}"
            )
        networks = [
            ClipNetworkSettings(weights=path, engine=values["engine"], head_weights=per_head)
            for path, per_head in zip(weights, head_weights, strict=True)
        ]
        return cls(
            networks,
            hop=values["hop"],
            frame_stride=values["frame_stride"],
            average_clips=values["average_clips"],
            final_clips=values["final_clips"],
            prior=Path(values["prior"]) if values["prior"] else None,
            track=values["track"],
        )

    def start(self) -> None:
        pool = default_pool()
        networks = [pool.get(settings) for settings in self.settings]
        ensemble = ClipEnsemble(networks, [s.head_weights for s in self.settings])
        prior = PriorTable.load(self.prior_path) if self.prior_path else None
        self.parser = ClipParser(ensemble, prior)
        self.per_person = self.track or ensemble.clips == "person"
        keep_all = self.final_clips > 0
        self.window = None if self.per_person else self._window(keep_all=keep_all)
        self.latest: ClipResult | None = None
        self.tracker = IouTracker()
        self.track_windows: dict[int, ClipWindow] = {}
        self.track_decisions: dict[int, Decision] = {}
        self.track_latest: dict[int, ClipResult] = {}
        self.ended_windows: list[ClipWindow] = []

    def _window(self, keep_all: bool = False, short_side: int | None = None) -> ClipWindow:
        ensemble = self.parser.ensemble
        return ClipWindow(
            ensemble.clip_len,
            ensemble.crop_size,
            short_side=short_side or ensemble.short_side,
            frame_stride=self.frame_stride or ensemble.frame_stride,
            hop=self.hop,
            average_clips=self.average_clips,
            keep_all=keep_all,
        )

    def _result(self, decision: Decision, start: int, end: int, track_id: int | None = None):
        result = self.parser.result(decision, self.stream, start, end, time.time_ns())
        if track_id is None:
            return result
        return ClipResult(**{**_fields(result), "track_id": track_id})

    def _decide(self, window: ClipWindow, clip: np.ndarray) -> Decision:
        """Classify one clip; the window's causal running average of its decisions."""
        return window.add(self.parser.ensemble(clip[None])[0])

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.parser is None:
            return
        self.stream = frame.stream
        index = frame.record.frame_index
        humans: tuple[HumanResult, ...] = frame.record.results.get(HUMANS, ())
        decided: list[ClipResult] = []
        if self.per_person:
            track_ids, per_human = self._tracks(frame, index, humans, decided)
        else:
            clip = self.window.push(index, frame.rgb)
            if clip is not None:
                decision = self._decide(self.window, clip)
                self.latest = self._result(decision, self.window.window_start(), index)
                decided.append(self.latest)
            track_ids, per_human = [None] * len(humans), [self.latest] * len(humans)
        states = [
            with_states((human,), clip_result, (track_id,))[0]
            for human, clip_result, track_id in zip(humans, per_human, track_ids, strict=True)
        ]
        frame.record.results[CLIP] = tuple(decided)
        frame.record.results[FRAME] = FrameResult(
            stream=frame.stream,
            frame_index=index,
            pts_ns=frame.pts_ns,
            wall_ns=time.time_ns(),
            width=frame.width,
            height=frame.height,
            humans=tuple(states),
            latest_clip=self.latest,
        )

    def _tracks(
        self,
        frame: FrameContext,
        index: int,
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
        size = self.parser.ensemble.crop_size
        crops = person_clip_crops(frame.rgb, boxes, size) if len(boxes) else []
        for track_id, crop in zip(ids, crops, strict=True):
            window = self.track_windows.get(track_id)
            if window is None:
                window = self._window(keep_all=self.final_clips > 0, short_side=size)
                self.track_windows[track_id] = window
            clip = window.push(index, crop)
            if clip is not None:
                decision = self._decide(window, clip)
                self.track_decisions[track_id] = decision
                self.track_latest[track_id] = self._result(
                    decision, window.window_start(), index, track_id
                )
                decided.append(self.track_latest[track_id])
        if decided:
            start = min(result.start_frame for result in decided)
            self.latest = self._result(average(list(self.track_decisions.values())), start, index)
            decided.append(self.latest)
        return list(ids), [self.track_latest.get(track_id, self.latest) for track_id in ids]

    def finish(self) -> None:
        """End of stream: post the whole-stream decision from evenly spread clips."""
        if self.parser is None or self.final_clips <= 0:
            return
        windows = (
            [*self.ended_windows, *self.track_windows.values()]
            if self.per_person
            else [self.window]
        )
        decisions = []
        for window in windows:
            clips = window.finish(self.final_clips)
            if clips is not None:
                decisions.append(average(self.parser.ensemble(clips)))
        if not decisions:
            return
        first = min(window.first_index or 0 for window in windows if window.first_index is not None)
        last = max(window.last_index for window in windows)
        board.post(self.stream, self._result(average(decisions), first, last))

    def stop(self) -> None:
        self.parser = None


def _fields(result: ClipResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in result.__slots__}


CLIP_ELEMENT = ElementSpec(
    name="tpsclip",
    summary="Buffer clips, classify them with the CSN heads, attach part states to every frame",
    stage_factory=ClipStage.from_properties,
    properties=(
        Prop("weights", str, None, "Comma-separated CSN checkpoints (the ensemble)", required=True),
        Prop("engine", str, "torch", "Backend: torch, onnxruntime or tensorrt"),
        Prop(
            "head-weights",
            str,
            "",
            'JSON list, one {head: weight} per network, e.g. [{"video": 7}]',
        ),
        Prop("hop", int, 16, "Frames between two clip decisions", minimum=1),
        Prop(
            "frame-stride", int, 0, "Take every n-th frame (0: as the CSN was trained)", minimum=0
        ),
        Prop("average-clips", int, 7, "Decisions averaged causally", minimum=1),
        Prop(
            "final-clips", int, 7, "Clips of the whole-stream decision at EOS (0: none)", minimum=0
        ),
        Prop("prior", str, "", "Prior table JSON: states from it instead of the part heads"),
        Prop(
            "track",
            bool,
            False,
            "Classify per person (IoU tracks; automatic for CSNs trained on person clips)",
        ),  # fmt: skip
    ),
)
