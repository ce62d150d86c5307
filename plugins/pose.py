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
from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext
from plugins.pool import NetworkPool


class PoseStage:
    """Estimates the pose of each detected person of one frame.

    Args:
        settings: the estimator's network and decoding.
        pool: where the network is loaded (shared with the other streams).
    """

    def __init__(self, settings: PoseSettings, pool: NetworkPool) -> None:
        self.settings = settings
        self.pool = pool
        self.estimator: AnyPoseEstimator | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], context: ProcessContext) -> PoseStage:
        return cls(POSE.settings_from(values), context.pool)

    def start(self) -> None:
        self.estimator = pose_estimator(self.pool.get(self.settings), self.settings)

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.estimator is None:
            return
        detections = frame.record.detections
        if detections is not None:
            frame.record.persons = self.estimator([frame.rgb], [detections])[0]

    def finish(self) -> None:
        """Nothing to flush: each frame is handled on its own."""

    def stop(self) -> None:
        self.estimator = None


POSE = ElementSpec(
    name="tpspose",
    summary="Estimate the pose (HRNet or MoveNet) of each detected person and refine its box",
    stage_factory=PoseStage.from_properties,
    settings=PoseSettings,
)
