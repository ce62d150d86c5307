"""``tpsperson``: the person detector on every frame; top-k persons into the side table.

The detector follows the weights: our YOLOF checkpoint, or the real MoveNet MultiPose ONNX file.

gst-launch-1.0 ... ! tpsstamp stream=cam0 ! tpsperson weights=weights/person.safetensors ! ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parsing.frame_parser import AnyPersonDetector, person_detector
from parsing.settings import PersonSettings
from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext
from plugins.pool import NetworkPool


class PersonStage:
    """Runs the person detector on one frame and records its detections.

    Args:
        settings: the detector's network and decoding.
        pool: where the network is loaded (shared with the other streams).
    """

    def __init__(self, settings: PersonSettings, pool: NetworkPool) -> None:
        self.settings = settings
        self.pool = pool
        self.detector: AnyPersonDetector | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], context: ProcessContext) -> PersonStage:
        return cls(PERSON.settings_from(values), context.pool)

    def start(self) -> None:
        self.detector = person_detector(self.pool.get(self.settings), self.settings)

    def process(self, frame: FrameContext) -> None:
        if frame.record is not None and self.detector is not None:
            frame.record.detections = self.detector([frame.rgb])[0]

    def finish(self) -> None:
        """Nothing to flush: each frame is handled on its own."""

    def stop(self) -> None:
        self.detector = None


PERSON = ElementSpec(
    name="tpsperson",
    summary="Detect persons (YOLOF or MoveNet MultiPose) on RGB frames",
    stage_factory=PersonStage.from_properties,
    settings=PersonSettings,
)
