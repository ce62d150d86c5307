"""``tpspose``: top-down pose of every detected person, and the box refined around it.

The estimator follows the weights: our HRNet checkpoint, or a real MoveNet Lightning / Thunder
ONNX file.

Reads the person detections `tpsperson` recorded; records `Persons` (boxes, scores, keypoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parsing.frame_parser import AnyPoseEstimator, pose_estimator
from parsing.settings import PoseSettings
from plugins.element import ElementSpec, FrameContext, Prop
from plugins.network_props import NETWORK_PROPS, network_fields
from plugins.person import DETECTIONS
from plugins.pool import default_pool

PERSONS = "persons"
"""Side-table key: `parsing.frame_parser.Persons` of the frame."""


class PoseStage:
    """Estimates the pose of each detected person of one frame."""

    def __init__(self, settings: PoseSettings) -> None:
        self.settings = settings
        self.estimator: AnyPoseEstimator | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any]) -> PoseStage:
        return cls(
            PoseSettings(
                **network_fields(values),
                flip_test=values["flip_test"],
                min_keypoint_score=values["min_keypoint_score"],
                refine_person_boxes=values["refine_boxes"],
            )
        )

    def start(self) -> None:
        self.estimator = pose_estimator(default_pool().get(self.settings), self.settings)

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.estimator is None:
            return
        detections = frame.record.results.get(DETECTIONS)
        if detections is not None:
            frame.record.results[PERSONS] = self.estimator([frame.rgb], [detections])[0]

    def finish(self) -> None:
        """Nothing to flush: each frame is handled on its own."""

    def stop(self) -> None:
        self.estimator = None


POSE = ElementSpec(
    name="tpspose",
    summary="Estimate the pose (HRNet or MoveNet) of each detected person and refine its box",
    stage_factory=PoseStage.from_properties,
    properties=(
        *NETWORK_PROPS,
        Prop("flip-test", bool, True, "Average with the horizontally flipped crop"),
        Prop(
            "min-keypoint-score", float, 0.3, "Confident keypoint threshold", minimum=0, maximum=1
        ),
        Prop("refine-boxes", bool, True, "Enlarge person boxes to contain confident keypoints"),
    ),
)
