"""Every parser setting reaches its stage: rendered by the graph, parsed by GStreamer, read back by
the element; and the properties stay settable by hand in a launch line."""

from __future__ import annotations

from pathlib import Path

import gi
import pytest
from pydantic import BaseModel

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from parsing.settings import ParserSettings  # noqa: E402
from pipeline.config import ConfigError, validate  # noqa: E402
from pipeline.graph import parser_chain  # noqa: E402
from plugins.context import ProcessContext  # noqa: E402
from plugins.element import Stage, register_elements  # noqa: E402

NETWORK = {"engine": "onnxruntime", "device": "cuda:1", "precision": "fp16", "threads": 3}
PARSER = {
    "person": {
        **NETWORK, "weights": "person.safetensors", "score_threshold": 0.4, "nms_iou": 0.6,
        "max_persons": 3, "input_long_side": 384,
    },
    "pose": {
        "weights": "pose.safetensors", "engine": "tensorrt", "device": "cuda:0",
        "precision": "int8", "threads": 0, "flip_test": False, "decoding": "dark",
        "min_keypoint_score": 0.2,
        "refine_person_boxes": False,
    },
    "parts": {
        **NETWORK, "weights": 'a dir/"parts".safetensors', "mode": "fallback", "paint": False,
        "paint_min_score": 0.1, "score_threshold": 0.2, "keypoint_min_score": 0.4,
        "fallback_score": 0.5, "from_keypoints": ["hand", "foot"],
        "collapsed_pair_factor": 0.7,
        "refiners": [
            {"weights": "refiner.safetensors", "engine": "tensorrt", "device": "cuda:1",
             "precision": "fp16", "threads": 2},
            {**NETWORK, "weights": "fine refiner.safetensors"},
        ],
    },
    "clip": {
        "networks": [
            {**NETWORK, "weights": "ip.safetensors", "head_weights": {"video": 0.25}},
            {"weights": "ir.safetensors", "engine": "tensorrt", "device": "cuda:2",
             "precision": "int8", "threads": 2, "head_weights": {"video": 0.75, "hand": 0.5}},
        ],
        "frame_stride": 2, "hop": 4, "average_clips": 3, "part_labels": False,
        "prior": "prior table.json", "track": True, "track_weights": "frames",
    },
}  # fmt: skip
"""A parser whose every setting differs from its default (checked below)."""
SECTIONS = {"tpsperson": "person", "tpspose": "pose", "tpsparts": "parts", "tpsclip": "clip"}


@pytest.fixture(scope="module", autouse=True)
def elements() -> None:
    Gst.init(None)
    register_elements()


def _defaulted(settings: BaseModel) -> list[str]:
    """The fields of `settings` (nested ones too) left at their default."""
    left = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if not field.is_required() and value == field.get_default(call_default_factory=True):
            left.append(name)
        nested = value if isinstance(value, tuple) else ()  # the clip networks, part types
        nested = [item for item in nested if isinstance(item, BaseModel)]
        left += [f"{name}.{inner}" for item in nested for inner in _defaulted(item)]
    return left


def _stages(description: str) -> dict[str, Stage]:
    """Each of our elements of a launch line, by name, as the stage it would start."""
    stages, context = {}, ProcessContext()  # not started: no network is loaded
    for element in Gst.parse_bin_from_description(description, True).iterate_elements():
        spec = element.spec
        values = {prop.key: element.get_property(prop.name) for prop in spec.all_properties}
        stages[spec.name] = spec.stage_factory(values, context)
    return stages


def test_every_parser_setting_reaches_its_stage():
    parser = validate(ParserSettings, PARSER, "parser.yaml")
    for section in SECTIONS.values():
        assert _defaulted(getattr(parser, section)) == [], f"{section}: set these to non-defaults"
    stages = _stages(" ! ".join(parser_chain(parser, final_clips=5)))
    assert set(stages) == set(SECTIONS)
    for element, section in SECTIONS.items():
        assert stages[element].settings == getattr(parser, section), element
    assert stages["tpsclip"].final_clips == 5


def test_properties_set_by_hand_in_a_launch_line():
    stages = _stages(
        "tpsperson weights=p.safetensors score-threshold=0.4 max-persons=2"
        " ! tpspose weights=q.safetensors refine-person-boxes=false"
        ' ! tpsparts mode=keypoints from-keypoints=["hand"]'
        ' ! tpsclip networks=[{"weights":"c.safetensors","device":"cuda:0"}] frame-stride=2'
    )
    person = stages["tpsperson"].settings
    assert (person.weights, person.score_threshold, person.max_persons) == (
        Path("p.safetensors"),
        0.4,
        2,
    )
    assert stages["tpspose"].settings.refine_person_boxes is False
    assert stages["tpsparts"].settings.weights is None
    assert stages["tpsparts"].settings.from_keypoints == ("hand",)
    clip = stages["tpsclip"].settings
    assert [(n.weights, n.device) for n in clip.networks] == [(Path("c.safetensors"), "cuda:0")]
    assert clip.frame_stride == 2


def test_bad_property_values_are_one_line_errors_naming_the_property():
    with pytest.raises(ValueError, match=r"^tpsclip: networks: not JSON"):
        _stages("tpsclip networks=c.safetensors")
    with pytest.raises(ValueError, match=r"^tpsperson: input-long-side: .*multiple of 32[^\n]*$"):
        _stages("tpsperson weights=p.safetensors input-long-side=100")


def test_clip_len_is_gone():
    clip = {"networks": [{"weights": "c.safetensors"}], "clip_len": 8}
    with pytest.raises(ConfigError, match=r"parser\.yaml: clip\.clip_len: unknown key"):
        validate(ParserSettings, {**PARSER, "clip": clip}, "parser.yaml")
