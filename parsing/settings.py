"""Settings of the parser, as pydantic sections: typed, defaulted, described, frozen, strict.

`Section` is the base of every configuration section in the project (the pipeline's YAML sections
and the training recipes build on it too), so unknown keys are rejected everywhere alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EngineKind = Literal["torch", "onnxruntime", "tensorrt"]


class Section(BaseModel):
    """Base of every config section: typed, frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSettings(Section):
    """Where a network's weights are and what runs it."""

    weights: Path = Field(description="checkpoint in our format (safetensors with arch metadata)")
    engine: EngineKind = Field("torch", description="backend that runs the network")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0")
    precision: Literal["fp32", "fp16", "int8"] = Field("fp32", description="compute precision")
    threads: int = Field(1, ge=0, description="ONNX Runtime threads per call (0: one per core)")


class PersonSettings(NetworkSettings):
    """The person detector (YOLOF)."""

    score_threshold: float = Field(0.3, ge=0, le=1, description="minimum person score")
    nms_iou: float = Field(0.5, gt=0, le=1, description="IoU above which NMS suppresses")
    max_persons: int = Field(10, ge=1, description="persons kept per frame (the report: 10)")


class PoseSettings(NetworkSettings):
    """The top-down pose estimator (HRNet)."""

    flip_test: bool = Field(True, description="average with the horizontally flipped crop")
    min_keypoint_score: float = Field(0.3, ge=0, le=1, description="confident keypoint threshold")
    refine_person_boxes: bool = Field(
        True, description="enlarge each person box until its confident keypoints are inside"
    )


class PartSettings(NetworkSettings):
    """The part detector (YOLOF) on person crops."""

    paint: bool = Field(True, description="draw keypoints as coloured dots on the crop")
    paint_min_score: float = Field(0.3, ge=0, le=1, description="keypoints painted from this score")
    score_threshold: float = Field(0.05, ge=0, le=1, description="minimum part score")


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
    clip_len: int | None = Field(
        None, ge=1, description="frames per clip (default: the network's input length)"
    )
    frame_stride: int | None = Field(
        None, ge=1, description="take every n-th frame into a clip (default: as trained)"
    )
    hop: int = Field(16, ge=1, description="frames between two clip decisions")
    average_clips: int = Field(7, ge=1, description="decisions averaged, causally (report: 7)")
    part_labels: bool = Field(
        True,
        description="states from the predicted video-level part labels (the report's transform);"
        " off: the prior table's most frequent state for the predicted action",
    )
    prior: Path | None = Field(None, description="prior table JSON, needed when part_labels off")


class ParserSettings(Section):
    """The whole parser: frame stages and clip classifiers."""

    person: PersonSettings
    pose: PoseSettings
    parts: PartSettings
    clip: ClipSettings
