"""Part refiner: re-places a small part's box inside a patch cut around a first guess.

Hands and feet are a few pixels wide (an 8-pixel hand on a 130-pixel person), so the part
detector's stride-16 boxes and the keypoint geometry miss them by a few pixels, which at that size
is most of the IoU. This network looks again at a patch centred on the first guess, at a finer
stride: a soft arg-max over a stride-4 map places the centre (sub-pixel, translation equivariant),
and a pooled stride-8 feature gives the size. One map and one size per part type (its classes).

A departure from the report, which takes the part detector's boxes as they are: the parser runs
it only where `parser.parts.refiners` names weights.

Input: (N, 3, S, S) patches (ImageNet-normalised RGB). Output: (N, T, 4) per type T: centre x, y
as fractions of the patch side from its left / top edge, and log width, log height in patch sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.registry import register


class ConvBlock(nn.Sequential):
    """3x3 conv + BN + ReLU; ``stride`` 2 halves the size, ``dilation`` widens the view."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                3,
                stride=stride,
                padding=dilation,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def stage(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """A stride-2 block then a same-size block."""
    return nn.Sequential(
        ConvBlock(in_channels, out_channels, stride=2),
        ConvBlock(out_channels, out_channels, dilation=dilation),
    )


def soft_argmax(maps: Tensor) -> Tensor:
    """(N, T, h, w) logits -> (N, T, 2) expected (x, y) as fractions of the map's width / height,
    pixel centres at (j + 0.5) / w."""
    n, t, h, w = maps.shape
    weights = torch.softmax(maps.reshape(n, t, h * w), dim=-1).reshape(n, t, h, w)
    xs = (torch.arange(w, dtype=maps.dtype, device=maps.device) + 0.5) / w
    ys = (torch.arange(h, dtype=maps.dtype, device=maps.device) + 0.5) / h
    x = (weights.sum(dim=2) * xs).sum(dim=-1)
    y = (weights.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack((x, y), dim=-1)


class PartRefiner(nn.Module):
    """Stem, two stages to stride 4 (centre maps), one more to stride 8 (sizes).

    Args:
        num_classes: part types refined (one centre map and one size each).
        widths: channels of the stem and the three stages.
        input_size: patch side S the weights are trained at.
    """

    def __init__(
        self, num_classes: int = 2, widths: Sequence[int] = (16, 32, 64, 128), input_size: int = 64
    ) -> None:
        super().__init__()
        stem, first, second, third = widths
        self.num_classes = num_classes
        self.input_shape = (3, input_size, input_size)
        self.stem = ConvBlock(3, stem)
        self.stage1 = stage(stem, first)
        self.stage2 = stage(first, second, dilation=2)
        self.stage3 = stage(second, third, dilation=2)
        self.centre = nn.Conv2d(second, num_classes, 1)
        self.size = nn.Linear(third, 2 * num_classes)

    def forward(self, patches: Tensor) -> Tensor:
        fine = self.stage2(self.stage1(self.stem(patches)))  # N, C, S/4, S/4
        centres = soft_argmax(self.centre(fine))  # N, T, 2
        pooled = self.stage3(fine).mean(dim=(2, 3))  # N, C'
        sizes = self.size(pooled).reshape(-1, self.num_classes, 2)  # log w, log h
        return torch.cat((centres, sizes), dim=-1)


@register("part_refiner_tiny")
def part_refiner_tiny(num_classes: int = 2, **overrides: object) -> PartRefiner:
    """The refiner the parser ships for hands and feet: 64x64 patches, ~0.3M parameters."""
    return PartRefiner(num_classes=num_classes, **overrides)  # type: ignore[arg-type]
