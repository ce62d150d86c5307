"""``tpsparts``: the top-1 box per body part of each person, by the ``mode`` property.

``detector`` paints the pose on each person's crop and runs the part detector (YOLOF);
``keypoints`` derives the boxes from the pose and loads no network (``weights`` may stay unset);
``fallback`` fills the parts the detector misses with the keypoint boxes. Reads the `Persons` that
`tpspose` recorded; records the frame's humans with their parts (states come later, from the clip
decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, get_args

from pydantic import ValidationError

from parsing.frame_parser import PartDetector, humans
from parsing.settings import PartMode, PartSettings
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.network_props import NETWORK_PROPS, network_fields
from plugins.pool import default_pool
from plugins.pose import PERSONS

HUMANS = "humans"
"""Side-table key: tuple of `parsing.results.HumanResult` of the frame (no part states yet)."""


class PartStage:
    """Finds the top-1 box per part of each person of one frame (detected or from keypoints)."""

    def __init__(self, settings: PartSettings) -> None:
        self.settings = settings
        self.detector: PartDetector | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> PartStage:
        """The stage from the element's properties.

        Raises:
            ValueError: the properties do not make valid settings (e.g. a detecting mode
                without weights), in one line.
        """
        try:
            settings = PartSettings(
                **network_fields(values),
                mode=values["mode"],
                paint=values["paint"],
                paint_min_score=values["paint_min_score"],
                score_threshold=values["score_threshold"],
                keypoint_min_score=values["keypoint_min_score"],
                fallback_score=values["fallback_score"],
            )
        except ValidationError as error:
            problems = "; ".join(str(problem["msg"]) for problem in error.errors())
            raise ValueError(f"tpsparts: {problems}") from error
        return cls(settings)

    def start(self) -> None:
        self.detector = PartDetector.load(self.settings, default_pool().get)

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


_DEFAULT = {name: field.default for name, field in PartSettings.model_fields.items()}
_SCORE = {"minimum": 0, "maximum": 1}

PARTS = ElementSpec(
    name="tpsparts",
    summary="The top-1 box per body part: detected on the painted crop, or from the keypoints",
    stage_factory=PartStage.from_properties,
    properties=(
        *(
            replace(prop, required=False) if prop.name == "weights" else prop
            for prop in NETWORK_PROPS
        ),
        Prop("mode", str, _DEFAULT["mode"], f"Part boxes from: {', '.join(get_args(PartMode))}"),
        Prop("paint", bool, _DEFAULT["paint"], "Draw keypoints as coloured dots on the crop"),
        Prop(
            "paint-min-score",
            float,
            _DEFAULT["paint_min_score"],
            "Keypoints painted from this score",
            **_SCORE,
        ),
        Prop("score-threshold", float, _DEFAULT["score_threshold"], "Minimum part score", **_SCORE),
        Prop(
            "keypoint-min-score",
            float,
            _DEFAULT["keypoint_min_score"],
            "keypoints, fallback: keypoints used from this score",
            **_SCORE,
        ),
        Prop(
            "fallback-score",
            float,
            _DEFAULT["fallback_score"],
            "fallback: detector boxes below this score give way to keypoint boxes",
            **_SCORE,
        ),
    ),
)
