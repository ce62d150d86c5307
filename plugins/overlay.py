"""``tpsoverlay``: draws each frame's parse on the video (boxes, skeletons, part states, action).

Sits after ``tpsclip`` (whose `FrameResult` it draws) and before ``tpspublish``; its output is
the annotated video a person looks at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parsing.results import FrameResult, HumanResult
from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext
from tps.drawing import Figure, draw_figures


def figures(humans: Sequence[HumanResult]) -> list[Figure]:
    """The drawable form of a frame's humans."""
    return [
        Figure(
            box=human.box,
            keypoints=human.keypoints,
            parts={name: (part.box, part.state) for name, part in human.parts.items()},
            label="" if human.track_id is None else f"#{human.track_id}",
        )
        for human in humans
    ]


def caption(result: FrameResult) -> str:
    """Stream, frame and the latest action decision."""
    clip = result.latest_clip
    action = "-" if clip is None else f"{clip.label} {clip.score:.2f}"
    return f"{result.stream} #{result.frame_index}  {action}"


class OverlayStage:
    """Draws the frame's `FrameResult` onto its pixels."""

    @classmethod
    def from_properties(cls, _values: Mapping[str, Any], _context: ProcessContext) -> OverlayStage:
        return cls()

    def start(self) -> None:
        """Nothing to acquire."""

    def process(self, frame: FrameContext) -> None:
        record = frame.record
        if record is None:
            return
        result = record.frame
        if result is not None:
            draw_figures(frame.rgb, figures(result.humans), caption(result))
        elif record.humans is not None:  # no clip element upstream: the parse the parts left
            caption_text = f"{frame.stream} #{record.frame_index}"
            draw_figures(frame.rgb, figures(record.humans), caption_text)

    def finish(self) -> None:
        """Nothing to flush."""

    def stop(self) -> None:
        """Nothing to release."""


OVERLAY = ElementSpec(
    name="tpsoverlay",
    summary="Draw persons, skeletons, part boxes, part states and the action on the video",
    stage_factory=OverlayStage.from_properties,
    writable=True,
)
