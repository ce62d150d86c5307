"""``tpsparts``: the top-1 box per body part of each person, by the ``mode`` property.

``detector`` paints the pose on each person's crop and runs the part detector (YOLOF);
``keypoints`` derives the boxes from the pose and loads no network (``weights`` may stay unset);
``fallback`` fills the parts the detector misses with the keypoint boxes; in both detecting modes
``from-keypoints`` (part types as JSON, e.g. ``["hand"]``) takes those types from the keypoints.
``refiners`` (networks' settings as a JSON list, e.g.
``refiners='[{"weights":"weights/refiner_fine.safetensors"}]'``) place the hands and feet found
again, each on the last one's boxes (`parsing.part_refining`); ``collapsed-pair-factor`` discounts
a left/right pair found on one spot. Reads
the `Persons` that `tpspose` recorded; records the frame's humans with their parts (states come
later, from the clip decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parsing.frame_parser import PartDetector, humans
from parsing.settings import PartSettings
from plugins.context import ProcessContext
from plugins.element import ElementSpec, FrameContext
from plugins.pool import NetworkPool


class PartStage:
    """Finds the top-1 box per part of each person of one frame (detected or from keypoints).

    Args:
        settings: the mode, the detector's network and decoding.
        pool: where the network is loaded, when the mode runs one (shared with the other streams).
    """

    def __init__(self, settings: PartSettings, pool: NetworkPool) -> None:
        self.settings = settings
        self.pool = pool
        self.detector: PartDetector | None = None

    @classmethod
    def from_properties(cls, values: Mapping[str, Any], context: ProcessContext) -> PartStage:
        """The stage from the element's properties.

        Raises:
            ValueError: the properties do not make valid settings (e.g. a detecting mode
                without weights), in one line.
        """
        return cls(PARTS.settings_from(values), context.pool)

    def start(self) -> None:
        self.detector = PartDetector.load(self.settings, self.pool.get)

    def process(self, frame: FrameContext) -> None:
        if frame.record is None or self.detector is None:
            return
        persons = frame.record.persons
        if persons is not None:
            frame.record.humans = humans(persons, self.detector(frame.rgb, persons))

    def finish(self) -> None:
        """Nothing to flush: each frame is handled on its own."""

    def stop(self) -> None:
        self.detector = None


PARTS = ElementSpec(
    name="tpsparts",
    summary="The top-1 box per body part: detected on the painted crop, or from the keypoints",
    stage_factory=PartStage.from_properties,
    settings=PartSettings,
)
