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

import time
from collections.abc import Mapping
from typing import Any

from parsing.clip_parser import ClipEnsemble
from parsing.clip_stream import ClipStream, ClipWindowing
from parsing.results import FrameResult
from parsing.settings import ClipSettings
from plugins.board import Board
from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.pool import NetworkPool
from tps.labels import PriorTable


class ClipStage:
    """Feeds a stream's frames to its `ClipStream` and files what comes back in the side table.

    Args:
        settings: the CSN networks (each loaded with its own settings), windows and decision.
        final_clips: clips of the whole-stream decision at end-of-stream (0: none); the graph
            sets it by mode, so it is the element's own property, not a setting.
        pool: where the networks are loaded (shared with the other streams).
        board: where the whole-stream decision is posted for the publisher.
    """

    def __init__(
        self, settings: ClipSettings, final_clips: int, pool: NetworkPool, board: Board
    ) -> None:
        self.settings = settings
        self.final_clips = final_clips
        self.pool = pool
        self.board = board
        self.clips: ClipStream | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], context: ProcessContext) -> ClipStage:
        settings = CLIP_ELEMENT.settings_from(values)
        return cls(settings, values["final_clips"], context.pool, context.board)

    def start(self) -> None:
        settings, pool = self.settings, self.pool
        networks = [pool.get(network) for network in settings.networks]
        ensemble = ClipEnsemble(networks, [network.head_weights for network in settings.networks])
        windowing = ClipWindowing(
            ensemble,
            hop=settings.hop,
            frame_stride=settings.frame_stride,
            average_clips=settings.average_clips,
            final_clips=self.final_clips,
            track_weights=settings.track_weights,
        )
        # the prior table gives the states only when the part labels do not
        prior_path = None if settings.part_labels else settings.prior
        prior = PriorTable.load(prior_path) if prior_path else None
        self.clips = ClipStream(windowing, prior, track=settings.track)

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.clips is None:
            return
        humans = frame.record.humans or ()
        parsed = self.clips.push(frame.stream, frame.record.frame_index, frame.rgb, humans)
        frame.record.clips = parsed.decided
        frame.record.frame = FrameResult(
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
            self.board.post(result.stream, result)

    def stop(self) -> None:
        self.clips = None


CLIP_ELEMENT = ElementSpec(
    name="tpsclip",
    summary="Buffer clips, classify them with the CSN heads, attach part states to every frame",
    stage_factory=ClipStage.from_properties,
    settings=ClipSettings,
    properties=(
        Prop(
            "final-clips", int, 7, "Clips of the whole-stream decision at EOS (0: none)", minimum=0
        ),
    ),
)
