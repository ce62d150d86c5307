"""Network definitions (CSN, HRNet, YOLOF, the part refiner), a registry of builders and
checkpoint loading.

Importing the package registers every builder:

    import models
    model = models.build("ir_csn_tiny", num_classes=24)
    models.load_checkpoint(model, "ircsn.pth", reinit_head=True)
"""

from models import csn, hrnet, part_refiner, yolof
from models.checkpoint import (
    LoadReport,
    build_from_checkpoint,
    load_checkpoint,
    read_checkpoint,
    read_metadata,
    save_checkpoint,
)
from models.registry import ModelError, build, names, register

__all__ = [
    "LoadReport",
    "ModelError",
    "build",
    "build_from_checkpoint",
    "csn",
    "hrnet",
    "load_checkpoint",
    "names",
    "part_refiner",
    "read_checkpoint",
    "read_metadata",
    "register",
    "save_checkpoint",
    "yolof",
]
