"""``tpsparts``: pose painting and the part detector (YOLOF) on each person's crop.

Reads the `Persons` that `tpspose` recorded; records the frame's humans with their parts (states
come later, from the clip decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parsing.frame_parser import PartDetector, humans
from parsing.settings import PartSettings
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.network_props import NETWORK_PROPS, network_fields
from plugins.pool import default_pool
from plugins.pose import PERSONS

HUMANS = "humans"
"""Side-table key: tuple of `parsing.results.HumanResult` of the frame (no part states yet)."""


class PartStage:
    """Finds the top-1 box per part of each person of one frame."""

    def __init__(self, settings: PartSettings) -> None:
        self.settings = settings
        self.detector: PartDetector | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> PartStage:
        return cls(
            PartSettings(
                **network_fields(values),
                paint=values["paint"],
                paint_min_score=values["paint_min_score"],
                score_threshold=values["score_threshold"],
            )
        )

    def start(self) -> None:
        self.detector = PartDetector(default_pool().get(self.settings), self.settings)

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.detector is None:
            return
        persons = frame.record.results.get(PERSONS)
        if persons is not None:
            frame.record.results[HUMANS] = humans(persons, self.detector(frame.rgb, persons))

    def finish(self) -> None:
        """Nothing to flush: each frame is handled on its own."""

    def stop(self) -> None:
        self.detector = None


PARTS = ElementSpec(
    name="tpsparts",
    summary="Paint each person's pose on its crop and detect the top-1 box per body part",
    stage_factory=PartStage.from_properties,
    properties=(
        *NETWORK_PROPS,
        Prop("paint", bool, True, "Draw keypoints as coloured dots on the crop"),
        Prop(
            "paint-min-score", float, 0.3, "Keypoints painted from this score", minimum=0, maximum=1
        ),
        Prop("score-threshold", float, 0.05, "Minimum part score", minimum=0, maximum=1),
    ),
)
