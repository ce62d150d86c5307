"""Settings of the parser, as pydantic sections: typed, defaulted, described, frozen, strict.

`Section` is the base of every configuration section in the project (the pipeline's YAML sections
and the training recipes build on it too), so unknown keys are rejected everywhere alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EngineKind = Literal["torch", "onnxruntime", "tensorrt"]


class Section(BaseModel):
    """Base of every config section: typed, frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSettings(Section):
    """Where a network's weights are and what runs it."""

    weights: Path = Field(
        description="checkpoint in our format (safetensors with arch metadata), or a real"
        " network's .onnx file that the weights manifest's real section describes"
    )
    engine: EngineKind = Field("torch", description="backend that runs the network")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0")
    precision: Literal["fp32", "fp16", "int8"] = Field("fp32", description="compute precision")
    threads: int = Field(1, ge=0, description="ONNX Runtime threads per call (0: one per core)")


class PersonSettings(NetworkSettings):
    """The person detector (YOLOF, or MoveNet MultiPose on real footage)."""

    score_threshold: float = Field(0.3, ge=0, le=1, description="minimum person score")
    nms_iou: float = Field(0.5, gt=0, le=1, description="IoU above which NMS suppresses")
    max_persons: int = Field(10, ge=1, description="persons kept per frame (the report: 10)")
    input_long_side: int = Field(
        256,
        ge=32,
        multiple_of=32,
        description="a network that takes any input size (MultiPose): the frame's long side is"
        " scaled to this (trained at 256; 384 found more people on shared/real, 2.6x slower)",
    )


class PoseSettings(NetworkSettings):
    """The top-down pose estimator (HRNet, or MoveNet Lightning / Thunder on real footage)."""

    flip_test: bool = Field(True, description="average with the horizontally flipped crop")
    decoding: Literal["classic", "dark"] = Field(  # models.hrnet.HEATMAP_DECODINGS
        "classic",
        description="HRNet heatmap decoding: classic (arg-max + quarter pixel) or dark (sub-pixel"
        " Taylor step on the smoothed log-heatmap)",
    )
    min_keypoint_score: float = Field(0.3, ge=0, le=1, description="confident keypoint threshold")
    refine_person_boxes: bool = Field(
        True, description="enlarge each person box until its confident keypoints are inside"
    )


PartMode = Literal["detector", "keypoints", "fallback"]
"""Where part boxes come from: the part detector, the keypoints alone
(`parsing.keypoint_parts`), or the detector with the keypoint box for each part it misses."""
PartType = Literal["head", "hand", "arm", "hip", "leg", "foot"]
"""A body part without its side (`tps.vocabulary.PART_TYPES`, which a test holds it to)."""
TrackWeights = Literal["equal", "frames"]
"""How a stream's decision weighs its person tracks (`ClipSettings.track_weights`)."""


class PartSettings(NetworkSettings):
    """The part stage: the part detector (YOLOF) on person crops, or boxes from the keypoints."""

    mode: PartMode = Field(
        "detector",
        description="detector: the part network's top-1 box per part; keypoints: boxes derived"
        " from the pose, no part network (weights unused); fallback: the detector's boxes, and"
        " the keypoint box for each part the detector did not find above fallback_score",
    )
    weights: Path | None = Field(  # type: ignore[assignment]  # optional here: keypoints mode
        None, description="part detector checkpoint; needed in detector and fallback modes"
    )
    paint: bool = Field(True, description="draw keypoints as coloured dots on the crop")
    paint_min_score: float = Field(0.3, ge=0, le=1, description="keypoints painted from this score")
    score_threshold: float = Field(0.05, ge=0, le=1, description="minimum part score")
    keypoint_min_score: float = Field(
        0.3, ge=0, le=1, description="keypoints and fallback modes: keypoints used from this score"
    )
    fallback_score: float = Field(
        0.3,
        ge=0,
        le=1,
        description="fallback mode: a detector box scoring below this is replaced by the"
        " keypoint box of its part (when the keypoints give one)",
    )
    from_keypoints: tuple[PartType, ...] = Field(
        (),
        description="detector and fallback modes: part types whose boxes come from the keypoints"
        " wherever the pose gives them, the detector's elsewhere; empty: none (the report's way)",
    )
    refiners: tuple[NetworkSettings, ...] = Field(
        (),
        description="part refiners (models.part_refiner) run in turn on the hands and feet found,"
        " in any mode, each on the last one's boxes; empty: the boxes as found (the report's way)",
    )
    collapsed_pair_factor: float = Field(
        1.0,
        gt=0,
        le=1,
        description="both scores of a left/right pair whose two boxes lie on one spot (IoU >= 0.5"
        " with each other, so one is on the other side's part) are multiplied by this; 1: the"
        " scores as found",
    )

    @model_validator(mode="after")
    def _weights_when_detecting(self) -> PartSettings:
        if self.uses_network and self.weights is None:
            raise ValueError(
                f"parts mode {self.mode!r} runs the part detector: set weights (a part detector"
                " checkpoint), or use mode 'keypoints'"
            )
        return self

    @property
    def uses_network(self) -> bool:
        """Whether the part detector runs (every mode but keypoints)."""
        return self.mode != "keypoints"


class ClipNetworkSettings(NetworkSettings):
    """One CSN of the clip ensemble and its per-head weight."""

    head_weights: dict[str, float] = Field(
        default_factory=dict, description="weight per head in the ensemble (missing: 1.0)"
    )


class ClipSettings(Section):
    """The clip classifiers: sliding window, CSN ensemble, part-state decision."""

    networks: tuple[ClipNetworkSettings, ...] = Field(
        min_length=1, description="CSN networks whose probabilities are averaged per head"
    )
    frame_stride: int = Field(
        0, ge=0, description="take every n-th frame into a clip (0: as the networks were trained)"
    )
    hop: int = Field(16, ge=1, description="frames between two clip decisions")
    average_clips: int = Field(7, ge=1, description="decisions averaged, causally (report: 7)")
    part_labels: bool = Field(
        True,
        description="states from the predicted video-level part labels (the report's transform);"
        " off: the prior table's most frequent state for the predicted action",
    )
    prior: Path | None = Field(None, description="prior table JSON, needed when part_labels off")
    track: bool = Field(
        False,
        description="classify per person (IoU tracks, clips cropped around each person) even if"
        " the networks were trained on whole frames; those trained on person clips always are",
    )
    track_weights: TrackWeights = Field(
        "equal",
        description="how the stream's decision weighs its person tracks: equal (one vote each, as"
        " the networks are scored per person) or frames (by the frames each track was seen, so a"
        " fragment of a few frames or a passing false detection counts little)",
    )


class ParserSettings(Section):
    """The whole parser: frame stages and clip classifiers."""

    person: PersonSettings
    pose: PoseSettings
    parts: PartSettings
    clip: ClipSettings | None = Field(
        None,
        description="the clip classifiers (action, part states); null: none, frames are still"
        " parsed (real footage without a user's Kinetics checkpoints)",
    )
