"""``tpsclip``: the sliding clip buffer and the CSN heads; part states attached to every frame.

Each frame goes into its stream's window (and, with `track=true`, into its person's window);
when a clip is due the CSN ensemble classifies it and the causal running average over the last
`average-clips` decisions gives the action and the state of each part type. The frame's final
`FrameResult` carries the latest decision. At end-of-stream, with `final-clips > 0`, the whole
stream is classified once more from clips spread evenly over it (the report's 7-clip test
protocol) and that decision is posted for the publisher. The method is
`parsing.clip_stream.ClipStream`; this element feeds it frames and files its results.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from parsing.clip_parser import ClipEnsemble
from parsing.clip_stream import ClipStream, ClipWindowing
from parsing.results import FrameResult, HumanResult
from parsing.settings import ClipNetworkSettings
from plugins import board
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.parts import HUMANS
from plugins.pool import default_pool
from tps.labels import PriorTable

CLIP = "clip"
"""Side-table key: the `ClipResult`s decided at this frame (stream-wide and per track)."""
FRAME = "frame"
"""Side-table key: the frame's final `FrameResult`, with part states."""


class ClipStage:
    """Feeds a stream's frames to its `ClipStream` and files what comes back in the side table.

    Args:
        settings: the CSN networks and their per-head weights.
        hop, frame_stride, average_clips, final_clips: window settings (see `ClipWindowing`).
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
        self.clips: ClipStream | None = None

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
        windowing = ClipWindowing(
            ensemble,
            hop=self.hop,
            frame_stride=self.frame_stride,
            average_clips=self.average_clips,
            final_clips=self.final_clips,
        )
        prior = PriorTable.load(self.prior_path) if self.prior_path else None
        self.clips = ClipStream(windowing, prior, track=self.track)

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.clips is None:
            return
        humans: tuple[HumanResult, ...] = frame.record.results.get(HUMANS, ())
        parsed = self.clips.push(frame.stream, frame.record.frame_index, frame.rgb, humans)
        frame.record.results[CLIP] = parsed.decided
        frame.record.results[FRAME] = FrameResult(
            stream=frame.stream,
            frame_index=frame.record.frame_index,
            pts_ns=frame.pts_ns,
            wall_ns=time.time_ns(),
            width=frame.width,
            height=frame.height,
            humans=parsed.humans,
            latest_clip=parsed.latest,
        )

    def finish(self) -> None:
        """End of stream: post the whole-stream decision for the publisher."""
        result = None if self.clips is None else self.clips.finish()
        if result is not None:
            board.post(result.stream, result)

    def stop(self) -> None:
        self.clips = None


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
