"""HRNet (Sun et al. 2019) top-down pose estimator with a heatmap head, mmpose 1.x key layout.

The network keeps a high-resolution branch through the whole body and adds lower-resolution
branches stage by stage, fusing all branches repeatedly. A 256x192 RGB person crop gives 17
heatmaps of 64x48 (stride 4). Keys match mmpose 1.x `HRNet` + `HeatmapHead`:
`backbone.conv1.weight`, `backbone.bn1.*`, `backbone.layer1.*`, `backbone.transition1.*`,
`backbone.stage2.0.branches.*`, `backbone.stage2.0.fuse_layers.*`, `head.final_layer.*`.

Post-processing follows mmpose: arg-max per heatmap with a quarter-pixel shift toward the higher
neighbour, optional flip test, and mapping back to the frame through the crop box
(`crop_box_for_person`, `heatmaps_to_frame`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from models.layers import FrozenBatchNorm2d, normalize_channels_last
from models.registry import ModelError, register

IMAGE_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
"""RGB means in pixel units (mmpose COCO top-down configs)."""
IMAGE_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
"""RGB standard deviations in pixel units."""

COCO_KEYPOINTS = 17
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
)
"""Left/right COCO keypoint pairs swapped by a horizontal flip."""

INPUT_HEIGHT, INPUT_WIDTH = 256, 192
HEATMAP_STRIDE = 4
CROP_ASPECT = INPUT_WIDTH / INPUT_HEIGHT
CROP_PADDING = 1.25
STEM_WIDTH = 64
BOTTLENECK_EXPANSION = 4
SUBPIXEL_SHIFT = 0.25
HeatmapDecoding = Literal["classic", "dark"]
HEATMAP_DECODINGS: tuple[HeatmapDecoding, ...] = ("classic", "dark")
DARK_BLUR_KERNEL = 11
"""DARK's smoothing taps: OpenCV's sigma for 11 taps is 2.0, the training target's sigma."""

NormLayer = Callable[[int], nn.Module]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; keys `conv1`, `bn1`, `conv2`, `bn2`, `downsample.{0,1}`."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: NormLayer,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels)
        self.bn1 = norm_layer(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = norm_layer(out_channels)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual; keys `conv1..3`, `bn1..3`, `downsample`."""

    expansion = BOTTLENECK_EXPANSION

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: NormLayer,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        mid_channels = out_channels // self.expansion
        self.conv1 = _conv1x1(in_channels, mid_channels)
        self.bn1 = norm_layer(mid_channels)
        self.conv2 = _conv3x3(mid_channels, mid_channels)
        self.bn2 = norm_layer(mid_channels)
        self.conv3 = _conv1x1(mid_channels, out_channels)
        self.bn3 = norm_layer(out_channels)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


Block = type[BasicBlock] | type[Bottleneck]


def _make_blocks(
    block: Block, in_channels: int, out_channels: int, blocks: int, norm_layer: NormLayer
) -> nn.Sequential:
    """`blocks` residual blocks at one resolution; the first has a 1x1 shortcut if widths differ."""
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(_conv1x1(in_channels, out_channels), norm_layer(out_channels))
    layers = [block(in_channels, out_channels, norm_layer, downsample)]
    layers += [block(out_channels, out_channels, norm_layer) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _fuse_from(j: int, i: int, channels: Sequence[int], norm_layer: NormLayer) -> nn.Module:
    """Bring branch `j` to branch `i`'s resolution and width (mmpose `fuse_layers[i][j]`).

    j > i: 1x1 conv + BN, then nearest upsampling by 2**(j-i).
    j < i: (i-j) stride-2 3x3 convs; the last maps to branch i's width with no ReLU.
    """
    if j > i:
        return nn.Sequential(
            _conv1x1(channels[j], channels[i]),
            norm_layer(channels[i]),
            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
        )
    if j == i:
        return nn.Identity()
    steps: list[nn.Module] = []
    for step in range(i - j):
        if step == i - j - 1:
            steps.append(
                nn.Sequential(_conv3x3(channels[j], channels[i], 2), norm_layer(channels[i]))
            )
        else:
            steps.append(
                nn.Sequential(
                    _conv3x3(channels[j], channels[j], 2),
                    norm_layer(channels[j]),
                    nn.ReLU(inplace=True),
                )
            )
    return nn.Sequential(*steps)


class HRModule(nn.Module):
    """Parallel branches of basic blocks, then all-to-all fusion.

    Input: a list of B tensors N,C_b,H/2^b,W/2^b. Output: the fused list (only branch 0 when
    `multiscale_output` is False, as in the last module of HRNet's last stage).
    """

    def __init__(
        self,
        num_blocks: Sequence[int],
        channels: Sequence[int],
        norm_layer: NormLayer,
        multiscale_output: bool = True,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            _make_blocks(BasicBlock, width, width, blocks, norm_layer)
            for blocks, width in zip(num_blocks, channels, strict=True)
        )
        num_outputs = len(channels) if multiscale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_from(j, i, channels, norm_layer) for j in range(len(channels)))
            for i in range(num_outputs)
        )
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        fused = []
        for fuse_row in self.fuse_layers:
            total = sum(fuse(x) for fuse, x in zip(fuse_row, xs, strict=True))
            fused.append(self.relu(total))
        return fused


@dataclass(frozen=True)
class StageSpec:
    """One HRNet stage: `num_modules` HRModules with `num_blocks[b]` blocks on branch b."""

    num_modules: int
    num_blocks: tuple[int, ...]
    channels: tuple[int, ...]


def _transition(
    previous: Sequence[int], current: Sequence[int], norm_layer: NormLayer
) -> nn.ModuleList:
    """mmpose `transition{k}`: adapt existing branches' widths; grow each new branch by stride-2
    3x3 convs from the lowest-resolution previous branch."""
    layers: list[nn.Module] = []
    for index, width in enumerate(current):
        if index < len(previous):
            if width == previous[index]:
                layers.append(nn.Identity())
            else:
                layers.append(
                    nn.Sequential(
                        _conv3x3(previous[index], width),
                        norm_layer(width),
                        nn.ReLU(inplace=True),
                    )
                )
            continue
        steps = []
        for step in range(index + 1 - len(previous)):
            out_width = width if step == index - len(previous) else previous[-1]
            steps.append(
                nn.Sequential(
                    _conv3x3(previous[-1], out_width, 2),
                    norm_layer(out_width),
                    nn.ReLU(inplace=True),
                )
            )
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetBackbone(nn.Module):
    """Stem (two stride-2 3x3 convs), a bottleneck layer, then stages 2..4 of parallel branches.

    Input N,3,H,W -> output [N,C0,H/4,W/4], the highest-resolution branch (C0 = stage 4 width 0);
    with `all_branches`, the last module fuses into every branch and all of them come out.
    """

    def __init__(
        self,
        stage1: StageSpec,
        stages: Sequence[StageSpec],
        norm_layer: NormLayer,
        all_branches: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_WIDTH, 3, stride=2, padding=1, bias=False)
        self.bn1 = norm_layer(STEM_WIDTH)
        self.conv2 = nn.Conv2d(STEM_WIDTH, STEM_WIDTH, 3, stride=2, padding=1, bias=False)
        self.bn2 = norm_layer(STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        layer1_width = stage1.channels[0] * BOTTLENECK_EXPANSION
        self.layer1 = _make_blocks(
            Bottleneck, STEM_WIDTH, layer1_width, stage1.num_blocks[0], norm_layer
        )
        previous: Sequence[int] = (layer1_width,)
        for number, spec in enumerate(stages, start=2):
            self.add_module(
                f"transition{number - 1}", _transition(previous, spec.channels, norm_layer)
            )
            is_last_stage = number == len(stages) + 1
            modules = [
                HRModule(
                    spec.num_blocks,
                    spec.channels,
                    norm_layer,
                    multiscale_output=all_branches
                    or not (is_last_stage and index == spec.num_modules - 1),
                )
                for index in range(spec.num_modules)
            ]
            self.add_module(f"stage{number}", nn.Sequential(*modules))
            previous = spec.channels
        self.num_stages = len(stages)
        self.out_channels: tuple[int, ...] = tuple(previous) if all_branches else (previous[0],)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))  # N,64,H/2,W/2
        x = self.relu(self.bn2(self.conv2(x)))  # N,64,H/4,W/4
        x = self.layer1(x)  # N,4*C1,H/4,W/4
        xs = [x]
        for number in range(2, self.num_stages + 2):
            transition = getattr(self, f"transition{number - 1}")
            # existing branches adapt in place; a new branch b grows from the lowest one
            xs = [layer(xs[min(b, len(xs) - 1)]) for b, layer in enumerate(transition)]
            xs = getattr(self, f"stage{number}")(xs)  # list of N,C_b,H/2^(b+2),W/2^(b+2)
        return xs  # [N,C0,H/4,W/4, ...]


class HeatmapHead(nn.Module):
    """A 1x1 conv from the high-resolution features to one heatmap per keypoint."""

    def __init__(self, in_channels: Sequence[int], num_keypoints: int) -> None:
        super().__init__()
        self.final_layer = nn.Conv2d(in_channels[0], num_keypoints, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.final_layer(features[0])  # N,K,H/4,W/4


class ConcatHeatmapHead(nn.Module):
    """HRNetV2's representation (Wang et al. 2019): every branch upsampled to the first and
    concatenated, mixed by a 1x1 conv + BN + ReLU, then a 1x1 conv to the heatmaps.

    Why: a narrow network's high-resolution branch (8 channels in `hrnet_tiny`) cannot carry 17
    keypoints apart; its left and right heatmaps come out the same. The low-resolution branches
    see the whole person, so which side faces the camera reaches every heatmap pixel.
    """

    def __init__(
        self, in_channels: Sequence[int], num_keypoints: int, norm_layer: NormLayer
    ) -> None:
        super().__init__()
        width = sum(in_channels)
        self.mix = nn.Sequential(_conv1x1(width, width), norm_layer(width), nn.ReLU(inplace=True))
        self.final_layer = nn.Conv2d(width, num_keypoints, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        upsampled = [features[0]] + [
            nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
            for x in features[1:]
        ]
        return self.final_layer(self.mix(torch.cat(upsampled, dim=1)))  # N,K,H/4,W/4


class HRNet(nn.Module):
    """Top-down pose network: N,3,H,W normalised person crops -> N,K,H/4,W/4 heatmaps.

    Attributes:
        input_shape: default per-sample input (3, 256, 192).
        num_classes: number of keypoints (heatmaps).
        head_prefixes: `state_dict` key prefixes of the head (for checkpoint loading).
    """

    head_prefixes: tuple[str, ...] = ("head.",)

    def __init__(self, backbone: HRNetBackbone, head: nn.Module, num_keypoints: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_classes = num_keypoints
        self.input_shape = (3, INPUT_HEIGHT, INPUT_WIDTH)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(crops))  # N,K,H/4,W/4


def _hrnet(
    stage1: StageSpec,
    stages: Sequence[StageSpec],
    *,
    num_classes: int,
    frozen_bn: bool,
    all_branches: bool = False,
) -> HRNet:
    norm_layer: NormLayer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    backbone = HRNetBackbone(stage1, stages, norm_layer, all_branches)
    head = (
        ConcatHeatmapHead(backbone.out_channels, num_classes, norm_layer)
        if all_branches
        else HeatmapHead(backbone.out_channels, num_classes)
    )
    return HRNet(backbone, head, num_classes)


def _paper_stages(width: int) -> tuple[StageSpec, ...]:
    """Stages 2-4 of HRNet-wN: 1, 4 and 3 modules of 4 basic blocks per branch."""
    return (
        StageSpec(1, (4, 4), (width, 2 * width)),
        StageSpec(4, (4, 4, 4), (width, 2 * width, 4 * width)),
        StageSpec(3, (4, 4, 4, 4), (width, 2 * width, 4 * width, 8 * width)),
    )


_PAPER_STAGE1 = StageSpec(1, (4,), (64,))


@register("hrnet_w48")
def hrnet_w48(*, num_classes: int = COCO_KEYPOINTS, frozen_bn: bool = False) -> HRNet:
    """HRNet-w48, 256x192 input; 63,595,745 parameters with 17 keypoints (the report's model)."""
    return _hrnet(_PAPER_STAGE1, _paper_stages(48), num_classes=num_classes, frozen_bn=frozen_bn)


@register("hrnet_w32")
def hrnet_w32(*, num_classes: int = COCO_KEYPOINTS, frozen_bn: bool = False) -> HRNet:
    """HRNet-w32, 256x192 input."""
    return _hrnet(_PAPER_STAGE1, _paper_stages(32), num_classes=num_classes, frozen_bn=frozen_bn)


def _small_stages(width: int, blocks: int) -> tuple[StageSpec, ...]:
    """Stages 2-4 of the small variants: one module each, `blocks` basic blocks per branch."""
    return tuple(
        StageSpec(1, (blocks,) * branches, tuple(width * 2**b for b in range(branches)))
        for branches in (2, 3, 4)
    )


_SMALL_STAGE1 = StageSpec(1, (1,), (16,))


def _small_hrnet(
    width: int, blocks: int, *, num_classes: int, frozen_bn: bool, all_branches: bool
) -> HRNet:
    """A small HRNet: `_small_stages(width, blocks)` after the 16-channel stem stage, with the
    high-resolution branch's head or HRNetV2's head on all four branches."""
    return _hrnet(
        _SMALL_STAGE1,
        _small_stages(width, blocks),
        num_classes=num_classes,
        frozen_bn=frozen_bn,
        all_branches=all_branches,
    )


@register("hrnet_tiny")
def hrnet_tiny(*, num_classes: int = COCO_KEYPOINTS, frozen_bn: bool = False) -> HRNet:
    """A small HRNet (width 8, one block per branch, one module per stage): the tests' pose
    network, shipped before the HRNetV2-headed ones."""
    return _small_hrnet(8, 1, num_classes=num_classes, frozen_bn=frozen_bn, all_branches=False)


@register("hrnet_tiny_v2")
def hrnet_tiny_v2(*, num_classes: int = COCO_KEYPOINTS, frozen_bn: bool = False) -> HRNet:
    """`hrnet_tiny` with HRNetV2's head on all four branches (`ConcatHeatmapHead`), shipped in the
    fifth round."""
    return _small_hrnet(8, 1, num_classes=num_classes, frozen_bn=frozen_bn, all_branches=True)


@register("hrnet_small_v2")
def hrnet_small_v2(*, num_classes: int = COCO_KEYPOINTS, frozen_bn: bool = False) -> HRNet:
    """`hrnet_tiny_v2` twice as wide (16 channels on the high-resolution branch) with two blocks
    per branch: the sides of hips, knees and ankles come out right more often (RESULTS, "Fifth
    round"); the shipped pose network."""
    return _small_hrnet(16, 2, num_classes=num_classes, frozen_bn=frozen_bn, all_branches=True)


def normalize_crops(crops_nhwc: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB crops N,H,W,3 (or one H,W,3) -> float32 N,3,H,W, `(pixel - mean) / std`."""
    values = torch.as_tensor(crops_nhwc)
    if values.ndim == 3:
        values = values.unsqueeze(0)  # 1,H,W,C
    if values.ndim != 4:
        raise ModelError(f"crops must be H,W,3 or N,H,W,3, got shape {tuple(values.shape)}")
    normalised = normalize_channels_last(values, IMAGE_MEAN, IMAGE_STD)  # N,H,W,C
    return normalised.permute(0, 3, 1, 2).contiguous()  # N,C,H,W


def flip_indices(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Keypoint permutation of a horizontal flip: index k of the flipped image is `result[k]`."""
    order = list(range(num_keypoints))
    for left, right in flip_pairs:
        order[left], order[right] = right, left
    return order


def unflip_heatmaps(
    heatmaps_flipped: torch.Tensor, flip_pairs: Sequence[tuple[int, int]] = COCO_FLIP_PAIRS
) -> torch.Tensor:
    """Heatmaps of a horizontally flipped crop, brought back to the original crop's frame.

    Mirrors the maps, swaps left/right keypoints and shifts one pixel right (mmpose's
    `shift_heatmap`, which compensates the flipped feature alignment). N,K,H,W -> N,K,H,W.
    """
    order = flip_indices(heatmaps_flipped.shape[1], flip_pairs)
    maps = heatmaps_flipped.flip(-1)[:, order]  # N,K,H,W mirrored, pairs swapped
    shifted = maps.clone()
    shifted[..., 1:] = maps[..., :-1]
    return shifted


def decode_heatmaps(
    heatmaps: torch.Tensor, method: HeatmapDecoding = "classic"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoint locations and scores from heatmaps: mmpose's classic decoding, or DARK's.

    Location, ``classic``: the arg-max pixel, moved a quarter pixel toward the higher of its two
    neighbours along each axis (x only when 1 < x < W-1, y only when 1 < y < H-1, as mmpose does).
    ``dark``: the arg-max pixel refined by `refine_dark` (a quarter pixel is a coarse step on
    small heatmaps: at 32x24 one heatmap pixel is 3% of the crop).
    Score: the maximum value. A map whose maximum is <= 0 still gets its arg-max location; the
    score says how much to trust it.

    Args:
        heatmaps: N,K,H,W float.

    Returns:
        (keypoints_xy N,K,2 float32 in heatmap pixels, scores N,K float32).
    """
    if heatmaps.ndim != 4:
        raise ModelError(f"heatmaps must be N,K,H,W, got shape {tuple(heatmaps.shape)}")
    n, k, height, width = heatmaps.shape
    flat = heatmaps.reshape(n, k, height * width).float()  # N,K,H*W
    scores, argmax = flat.max(dim=-1)  # N,K
    xs = argmax % width
    ys = argmax // width

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        index = (y.clamp(0, height - 1) * width + x.clamp(0, width - 1)).unsqueeze(-1)
        return flat.gather(-1, index).squeeze(-1)  # N,K

    keypoints_xy = torch.stack((xs, ys), dim=-1).float()  # N,K,2
    if method == "dark":
        return refine_dark(keypoints_xy, heatmaps.float()), scores
    if method != "classic":
        raise ModelError(f"heatmap decoding {method!r}: expected one of {HEATMAP_DECODINGS}")
    dx = at(ys, xs + 1) - at(ys, xs - 1)
    dy = at(ys + 1, xs) - at(ys - 1, xs)
    dx = torch.where((xs > 1) & (xs < width - 1), dx, torch.zeros_like(dx))
    dy = torch.where((ys > 1) & (ys < height - 1), dy, torch.zeros_like(dy))
    keypoints_xy += torch.stack((dx.sign(), dy.sign()), dim=-1) * SUBPIXEL_SHIFT
    return keypoints_xy, scores


def _gaussian_kernel(size: int) -> torch.Tensor:
    """1-D Gaussian of `size` taps with OpenCV's sigma for that size (`getGaussianKernel`)."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    taps = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def refine_dark(
    keypoints_xy: torch.Tensor, heatmaps: torch.Tensor, blur_kernel: int = DARK_BLUR_KERNEL
) -> torch.Tensor:
    """Sub-pixel keypoints by DARK (Zhang et al., CVPR 2020; mmpose's `refine_keypoints_dark`).

    Each heatmap is smoothed with a Gaussian of the training target's width (zero border,
    rescaled to keep its maximum), its logarithm is taken, and each integer arg-max moves by one
    Newton step of the log-heatmap's second-order Taylor expansion, ``-H^-1 g``: the maximum of
    the Gaussian the network drew, between pixels. Points within two pixels of the border or
    with a singular Hessian stay where they are.

    Args:
        keypoints_xy: N,K,2 integer arg-max locations (heatmap pixels).
        heatmaps: N,K,H,W.
        blur_kernel: taps of the smoothing Gaussian (11 matches a sigma-2 target).

    Returns:
        N,K,2 float32 refined locations.
    """
    n, k, height, width = heatmaps.shape
    kernel = _gaussian_kernel(blur_kernel)
    maps = heatmaps.reshape(n * k, 1, height, width)
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    pad = blur_kernel // 2
    blurred = nn.functional.conv2d(maps, kernel.view(1, 1, 1, -1), padding=(0, pad))
    blurred = nn.functional.conv2d(blurred, kernel.view(1, 1, -1, 1), padding=(pad, 0))
    blurred = blurred * peak / blurred.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-10)
    log_maps = blurred.clamp_min(1e-10).log().reshape(n, k, height * width)
    xs, ys = keypoints_xy[..., 0].long(), keypoints_xy[..., 1].long()  # N,K

    def at(dy: int, dx: int) -> torch.Tensor:
        index = (ys + dy).clamp(0, height - 1) * width + (xs + dx).clamp(0, width - 1)
        return log_maps.gather(-1, index.unsqueeze(-1)).squeeze(-1)  # N,K

    centre = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    hyy = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    hxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = hxx * hyy - hxy**2
    inside = (xs > 1) & (xs < width - 2) & (ys > 1) & (ys < height - 2) & (det != 0)
    safe = torch.where(inside, det, torch.ones_like(det))
    offset_x = -(hyy * gx - hxy * gy) / safe
    offset_y = -(hxx * gy - hxy * gx) / safe
    offset = torch.stack((offset_x, offset_y), dim=-1) * inside[..., None]
    return keypoints_xy.float() + offset


def crop_box_for_person(
    box_xyxy: np.ndarray | Sequence[float],
    aspect: float = CROP_ASPECT,
    padding: float = CROP_PADDING,
) -> np.ndarray:
    """The top-down crop for a person box, as mmpose makes it.

    The box keeps its centre; its width and height are multiplied by `padding`; then the shorter
    side (relative to `aspect` = width / height of the network input) is extended so the crop
    has exactly that aspect ratio. Nothing is clipped to the frame: the crop may extend past it
    (the warp fills with zeros).

    Args:
        box_xyxy: (4,) or (N, 4) boxes x1,y1,x2,y2 in frame pixels.

    Returns:
        float64 crop boxes x1,y1,x2,y2, same leading shape as `box_xyxy`.
    """
    boxes = np.asarray(box_xyxy, dtype=np.float64)
    if boxes.shape[-1:] != (4,) or boxes.ndim > 2:
        raise ModelError(f"person boxes must be (4,) or (N, 4) x1,y1,x2,y2, got {boxes.shape}")
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    width = (boxes[..., 2] - boxes[..., 0]) * padding
    height = (boxes[..., 3] - boxes[..., 1]) * padding
    wide = width > height * aspect
    width, height = np.where(wide, width, height * aspect), np.where(wide, width / aspect, height)
    half = np.stack((width, height), axis=-1) / 2
    return np.concatenate((centre - half, centre + half), axis=-1)


def heatmaps_to_frame(
    keypoints_xy: torch.Tensor,
    crop_boxes_xyxy: torch.Tensor | np.ndarray,
    heatmap_size_hw: tuple[int, int],
) -> torch.Tensor:
    """Map keypoints from heatmap pixels to frame pixels through each sample's crop box.

    A heatmap of H,W covers the crop (x1,y1,x2,y2) the input was resized from, so
    `x_frame = x1 + x_hm * (x2 - x1) / W` and likewise for y (mmpose 1.x convention).

    Args:
        keypoints_xy: N,K,2 in heatmap pixels (from `decode_heatmaps`).
        crop_boxes_xyxy: N,4 crop boxes in frame pixels (from `crop_box_for_person`).
        heatmap_size_hw: (H, W) of the heatmaps.

    Returns:
        N,K,2 float32 keypoints in frame pixels.
    """
    boxes = torch.as_tensor(crop_boxes_xyxy, dtype=torch.float32, device=keypoints_xy.device)
    boxes = boxes.reshape(-1, 4)  # N,4
    height, width = heatmap_size_hw
    scale = torch.stack(
        ((boxes[:, 2] - boxes[:, 0]) / width, (boxes[:, 3] - boxes[:, 1]) / height), dim=-1
    )  # N,2
    return keypoints_xy.float() * scale[:, None, :] + boxes[:, None, :2]  # N,K,2
