"""Shared vs separate CSN heads: real tiny networks, parameters counted exactly, rates measured."""

from __future__ import annotations

import json

import models
from bench.csn_modes import main

HEADS = {"video": ["a", "b"], "head": ["a_Head_none", "b_Head_turn"], "leg": ["a_Leg_bend"]}


def test_separate_heads_cost_a_backbone_each(tmp_path):
    shape = {"input_shape": [3, 4, 32, 32]}
    shared = models.build("ir_csn_tiny", num_classes={h: len(c) for h, c in HEADS.items()})
    models.save_checkpoint(shared, tmp_path / "csn.safetensors", "ir_csn_tiny", HEADS, shape)
    backbone = None
    for head, classes in HEADS.items():
        network = models.build("ir_csn_tiny", num_classes={head: len(classes)})
        models.save_checkpoint(
            network, tmp_path / "sep" / f"csn_{head}.safetensors", "ir_csn_tiny", {head: classes},
            shape,
        )  # fmt: skip
        fc = sum(
            p.numel() for name, p in network.named_parameters() if "fc" in name or "head" in name
        )
        backbone = sum(p.numel() for p in network.parameters()) - fc
    out = tmp_path / "modes.json"
    assert main(["--shared", str(tmp_path / "csn.safetensors"), "--separate", str(tmp_path / "sep"),
                 "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["separate"]["networks"] == 3 and report["shared"]["networks"] == 1
    extra = report["separate"]["parameters"] - report["shared"]["parameters"]
    assert extra == 2 * backbone  # the same heads, two more backbones
    assert report["shared"]["clips_per_s"] > 0 and report["separate"]["clips_per_s"] > 0
