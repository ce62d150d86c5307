"""Channel-Separated Networks (CSN; Tran et al. 2019) for clip classification, mmaction2 key layout.

ir-CSN bottlenecks are 1x1x1 -> depthwise 3x3x3 -> 1x1x1; ip-CSN adds a 1x1x1 conv + BN (no ReLU)
before the depthwise conv. The two differ only in the `conv2` factory passed to the stages.
Module names make `state_dict()` keys exactly mmaction2's `ResNet3dCSN` + `I3DHead`:
`backbone.conv1.conv.weight`, `backbone.layer1.0.conv2.0.conv.weight`, ...,
`backbone.layer2.0.downsample.conv.weight`, `cls_head.fc_cls.weight`.

Input: RGB clips N,C,T,H,W float, normalised with `CLIP_MEAN`/`CLIP_STD` (`normalize_clip`).
A 32x224x224 clip leaves the backbone as 2048x4x7x7.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Literal

import numpy as np
import torch
from torch import nn

from models.layers import FrozenBatchNorm3d, normalize_channels_last
from models.registry import ModelError, register

CLIP_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
"""RGB means in pixel units (mmaction2 CSN configs)."""
CLIP_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)
"""RGB standard deviations in pixel units."""

BN_EPS = 1e-3
EXPANSION = 4
STEM_WIDTH = 64
DROPOUT = 0.5
KINETICS_CLASSES = 400
PAPER_INPUT_SHAPE = (3, 32, 224, 224)
TINY_INPUT_SHAPE = (3, 8, 112, 112)
TINY_STAGES = (1, 1, 1, 1)
TINY_WIDTH = 16

NormLayer = Callable[[int], nn.Module]
Activation = Callable[[], nn.Module]
Conv2Factory = Callable[[int, int, NormLayer], nn.Sequential]
"""(planes, stride, norm_layer) -> the `conv2` stage of a bottleneck (an nn.Sequential)."""


class ConvBnAct3d(nn.Module):
    """Conv3d (no bias) + BatchNorm3d + optional activation; mmcv `ConvModule` key names.

    Keys: `conv.weight`, `bn.{weight,bias,running_mean,running_var,num_batches_tracked}`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        norm_layer: NormLayer,
        *,
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        groups: int = 1,
        activation: Activation | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            groups=groups,
            bias=False,
        )
        self.bn = norm_layer(out_channels)
        self.activate = activation() if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.bn(x)
        return self.activate(x)


_relu: Activation = partial(nn.ReLU, inplace=True)


def _depthwise(planes: int, stride: int, norm_layer: NormLayer) -> ConvBnAct3d:
    """Depthwise 3x3x3 conv + BN + ReLU; `stride` applies to T, H and W."""
    return ConvBnAct3d(
        planes,
        planes,
        3,
        norm_layer,
        stride=stride,
        padding=1,
        groups=planes,
        activation=_relu,
    )


def ir_conv2(planes: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    """Interaction-reduced `conv2`: depthwise 3x3x3 only (`conv2.0.*`)."""
    return nn.Sequential(_depthwise(planes, stride, norm_layer))


def ip_conv2(planes: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    """Interaction-preserved `conv2`: 1x1x1 + BN, no ReLU (`conv2.0.*`); depthwise (`conv2.1.*`)."""
    return nn.Sequential(
        ConvBnAct3d(planes, planes, 1, norm_layer),
        _depthwise(planes, stride, norm_layer),
    )


class CSNBottleneck(nn.Module):
    """1x1x1 reduce -> `conv2` (channel-separated 3x3x3) -> 1x1x1 expand, plus a shortcut.

    Input N,inplanes,T,H,W -> output N,planes*4,T/s,H/s,W/s (s = `stride`).
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        conv2: Conv2Factory,
        norm_layer: NormLayer,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBnAct3d(inplanes, planes, 1, norm_layer, activation=_relu)
        self.conv2 = conv2(planes, stride, norm_layer)
        self.conv3 = ConvBnAct3d(planes, planes * EXPANSION, 1, norm_layer)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.relu = _relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.conv2(out)
        out = self.conv3(out)
        return self.relu(out + self.downsample(x))


def _make_stage(
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int,
    conv2: Conv2Factory,
    norm_layer: NormLayer,
) -> nn.Sequential:
    """`blocks` bottlenecks; the first strides (T, H, W) by `stride` and has a 1x1x1 shortcut."""
    downsample = ConvBnAct3d(inplanes, planes * EXPANSION, 1, norm_layer, stride=stride)
    layers = [CSNBottleneck(inplanes, planes, conv2, norm_layer, stride, downsample)]
    layers += [
        CSNBottleneck(planes * EXPANSION, planes, conv2, norm_layer) for _ in range(1, blocks)
    ]
    return nn.Sequential(*layers)


class CSNBackbone(nn.Module):
    """Stem (conv 3x7x7 /1,2,2 + max-pool 1x3x3 /1,2,2) and four bottleneck stages.

    Input N,3,T,H,W -> output N,width*32,T/8,H/32,W/32 (width 64: 2048 channels).
    """

    def __init__(
        self,
        stage_blocks: Sequence[int],
        conv2: Conv2Factory,
        norm_layer: NormLayer,
        width: int = STEM_WIDTH,
    ) -> None:
        super().__init__()
        self.conv1 = ConvBnAct3d(
            3,
            width,
            (3, 7, 7),
            norm_layer,
            stride=(1, 2, 2),
            padding=(1, 3, 3),
            activation=_relu,
        )
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = width
        for index, blocks in enumerate(stage_blocks):
            planes = width * 2**index
            stride = 1 if index == 0 else 2
            stage = _make_stage(inplanes, planes, blocks, stride, conv2, norm_layer)
            self.add_module(f"layer{index + 1}", stage)
            inplanes = planes * EXPANSION
        self.out_channels = inplanes
        self.num_stages = len(stage_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # N,w,T,H/2,W/2
        x = self.maxpool(x)  # N,w,T,H/4,W/4
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)  # stage s>1: T,H,W halved
        return x


class _PooledHead(nn.Module):
    """Global average pool then dropout, shared by the single- and multi-head classifiers."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """N,C,T,H,W -> N,C pooled (and, in train mode, dropped-out) features."""
        x = self.pool(features)  # N,C,1,1,1
        x = self.dropout(x)
        return x.flatten(1)  # N,C


class LinearHead(_PooledHead):
    """Pool, dropout, one linear classifier (`fc_cls`): N,C,T,H,W -> N,K logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = DROPOUT) -> None:
        super().__init__(dropout)
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc_cls(self.pooled(features))  # N,K


class MultiLinearHead(_PooledHead):
    """Pool, dropout, several named linear classifiers (`fc_cls.<name>`) on the same features.

    Forward returns `{name: N,K_name logits}` in the order given at construction.
    """

    def __init__(
        self, in_channels: int, num_classes: Mapping[str, int], dropout: float = DROPOUT
    ) -> None:
        super().__init__(dropout)
        self.fc_cls = nn.ModuleDict(
            {name: nn.Linear(in_channels, count) for name, count in num_classes.items()}
        )

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.pooled(features)  # N,C
        return {name: linear(pooled) for name, linear in self.fc_cls.items()}


class CSN(nn.Module):
    """A CSN backbone and a classification head: N,3,T,H,W clip -> logits.

    Attributes:
        input_shape: the default per-sample input shape (C, T, H, W).
        num_classes: the class count, or `{head: class count}` for a multi-head model.
        head_prefixes: `state_dict` key prefixes of the classifier (for checkpoint loading).
    """

    head_prefixes: tuple[str, ...] = ("cls_head.",)

    def __init__(
        self,
        backbone: CSNBackbone,
        num_classes: int | Mapping[str, int],
        dropout: float,
        input_shape: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.backbone = backbone
        if isinstance(num_classes, Mapping):
            self.cls_head: _PooledHead = MultiLinearHead(
                backbone.out_channels, num_classes, dropout
            )
            self.num_classes: int | dict[str, int] = dict(num_classes)
        else:
            self.cls_head = LinearHead(backbone.out_channels, num_classes, dropout)
            self.num_classes = num_classes
        self.input_shape = input_shape
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)

    def forward(self, clips: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """N,3,T,H,W normalised clips -> N,K logits (or a dict of them for a multi-head model)."""
        features = self.backbone(clips)  # N,2048,T/8,H/32,W/32
        return self.cls_head(features)


def _csn(
    stage_blocks: Sequence[int],
    conv2: Conv2Factory,
    *,
    num_classes: int | Mapping[str, int],
    frozen_bn: bool,
    dropout: float,
    width: int = STEM_WIDTH,
    input_shape: tuple[int, ...] = PAPER_INPUT_SHAPE,
) -> CSN:
    norm_class = FrozenBatchNorm3d if frozen_bn else nn.BatchNorm3d
    norm_layer: NormLayer = partial(norm_class, eps=BN_EPS)
    backbone = CSNBackbone(stage_blocks, conv2, norm_layer, width)
    return CSN(backbone, num_classes, dropout, input_shape)


@register("ir_csn_152")
def ir_csn_152(
    *,
    num_classes: int | Mapping[str, int] = KINETICS_CLASSES,
    frozen_bn: bool = False,
    dropout: float = DROPOUT,
) -> CSN:
    """ir-CSN-152 (the report's Sports-1M model); 29,703,568 parameters with 400 classes."""
    return _csn(
        (3, 8, 36, 3), ir_conv2, num_classes=num_classes, frozen_bn=frozen_bn, dropout=dropout
    )


@register("ip_csn_152")
def ip_csn_152(
    *,
    num_classes: int | Mapping[str, int] = KINETICS_CLASSES,
    frozen_bn: bool = False,
    dropout: float = DROPOUT,
) -> CSN:
    """ip-CSN-152 (the report's IG-65M model); 33,016,592 parameters with 400 classes."""
    return _csn(
        (3, 8, 36, 3), ip_conv2, num_classes=num_classes, frozen_bn=frozen_bn, dropout=dropout
    )


@register("ir_csn_50")
def ir_csn_50(
    *,
    num_classes: int | Mapping[str, int] = KINETICS_CLASSES,
    frozen_bn: bool = False,
    dropout: float = DROPOUT,
) -> CSN:
    """ir-CSN-50: stages (3, 4, 6, 3); 13.13M parameters with 400 classes."""
    return _csn(
        (3, 4, 6, 3), ir_conv2, num_classes=num_classes, frozen_bn=frozen_bn, dropout=dropout
    )


@register("ir_csn_tiny")
def ir_csn_tiny(
    *,
    num_classes: int | Mapping[str, int] = KINETICS_CLASSES,
    frozen_bn: bool = False,
    dropout: float = DROPOUT,
) -> CSN:
    """A small ir-CSN (one block per stage, width 16) for tests and CPU demos; 8x112x112 input."""
    return _csn(
        TINY_STAGES,
        ir_conv2,
        num_classes=num_classes,
        frozen_bn=frozen_bn,
        dropout=dropout,
        width=TINY_WIDTH,
        input_shape=TINY_INPUT_SHAPE,
    )


@register("ip_csn_tiny")
def ip_csn_tiny(
    *,
    num_classes: int | Mapping[str, int] = KINETICS_CLASSES,
    frozen_bn: bool = False,
    dropout: float = DROPOUT,
) -> CSN:
    """The ip twin of `ir_csn_tiny` (the ensemble's second member at test size)."""
    return _csn(
        TINY_STAGES,
        ip_conv2,
        num_classes=num_classes,
        frozen_bn=frozen_bn,
        dropout=dropout,
        width=TINY_WIDTH,
        input_shape=TINY_INPUT_SHAPE,
    )


def normalize_clip(frames_thwc: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Turn decoded RGB frames into the network's input.

    Args:
        frames_thwc: uint8 RGB frames, T,H,W,3 (one clip) or N,T,H,W,3 (a batch of clips),
            numpy array or tensor; already resized/cropped to the network's size.

    Returns:
        float32 tensor N,3,T,H,W, `(pixel - CLIP_MEAN) / CLIP_STD` per RGB channel.
    """
    values = torch.as_tensor(frames_thwc)
    if values.ndim == 4:
        values = values.unsqueeze(0)  # 1,T,H,W,C
    if values.ndim != 5:
        raise ModelError(
            f"clip frames must be T,H,W,3 or N,T,H,W,3, got shape {tuple(values.shape)}"
        )
    normalised = normalize_channels_last(values, CLIP_MEAN, CLIP_STD)  # N,T,H,W,C
    return normalised.permute(0, 4, 1, 2, 3).contiguous()  # N,C,T,H,W


def sample_clip_indices(
    num_frames: int,
    clip_len: int,
    stride: int,
    num_clips: int,
    mode: Literal["uniform", "test"] = "test",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frame indices of `num_clips` clips of `clip_len` frames taken every `stride` frames.

    The rule (mmaction2 `SampleFrames`): a clip spans `span = clip_len * stride` frames; the
    `num_frames - span + 1` valid start positions are cut into `num_clips` equal segments.
    - `test`: each clip starts at the centre of its segment, so clips are spread evenly over the
      whole video (the report tests with 7 clips); deterministic.
    - `uniform`: each clip starts at a random position drawn uniformly inside its segment
      (training augmentation; pass `rng` for reproducibility).
    A video shorter than `span` starts every clip at frame 0; indices past the end loop back to
    the start (`index % num_frames`), so a short video repeats rather than reading past its end.

    Returns:
        int64 array (num_clips, clip_len) of frame indices in [0, num_frames).

    Example:
        >>> sample_clip_indices(100, 4, 2, 2).tolist()
        [[23, 25, 27, 29], [69, 71, 73, 75]]
    """
    for name, value in (
        ("num_frames", num_frames),
        ("clip_len", clip_len),
        ("stride", stride),
        ("num_clips", num_clips),
    ):
        if value < 1:
            raise ModelError(f"{name} must be at least 1, got {value}")
    starts_available = num_frames - clip_len * stride + 1
    if starts_available <= 0:
        offsets = np.zeros(num_clips, dtype=np.int64)
    elif mode == "test":
        segment = starts_available / num_clips
        offsets = (np.arange(num_clips) * segment + segment / 2).astype(np.int64)
    elif mode == "uniform":
        generator = rng if rng is not None else np.random.default_rng()
        segment = starts_available / num_clips
        jitter = generator.random(num_clips) * segment
        offsets = np.minimum(
            (np.arange(num_clips) * segment + jitter).astype(np.int64), starts_available - 1
        )
    else:
        raise ModelError(f"sampling mode must be 'uniform' or 'test', got {mode!r}")
    indices = offsets[:, None] + np.arange(clip_len)[None, :] * stride  # num_clips,clip_len
    return indices % num_frames
