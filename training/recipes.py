"""The training recipes `run.py train <kind>` dispatches to: a config model and an entry point each.

recipe = RECIPES["person"]
config = recipe.config_model.model_validate(yaml_data)
metrics = recipe.run(config, resume=False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.common import TrainConfigBase
from training.csn import CsnConfig, train_csn
from training.parts import PartsConfig, train_parts
from training.person import PersonConfig, train_person
from training.pose import PoseConfig, train_pose
from training.refiner import RefinerConfig, train_refiner


@dataclass(frozen=True)
class Recipe:
    """One trainable network.

    Attributes:
        config_model: the pydantic section its YAML config validates against.
        run: (config, resume) -> final metrics; writes weights under `config.out`.
        help: one line for the command's help.
    """

    config_model: type[TrainConfigBase]
    run: Callable[[Any, bool], dict[str, float]]
    help: str


RECIPES: dict[str, Recipe] = {
    "person": Recipe(PersonConfig, train_person, "YOLOF person detector on full frames"),
    "parts": Recipe(PartsConfig, train_parts, "YOLOF part detector on painted person crops"),
    "pose": Recipe(PoseConfig, train_pose, "HRNet heatmaps on GT person crops"),
    "csn": Recipe(CsnConfig, train_csn, "CSN clip classifier: video action + 6 part labels"),
    "refiner": Recipe(RefinerConfig, train_refiner, "part refiner: hand and foot boxes in patches"),
}
