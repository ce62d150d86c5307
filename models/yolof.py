"""YOLOF (You Only Look One-level Feature, arXiv 2103.09460): C5 backbone, dilated encoder, head.

Module names reproduce mmdet's, so a YOLOF checkpoint's ``state_dict`` loads by key:
``backbone.*`` (mmdet ``ResNet``), ``neck.lateral_conv``, ``neck.lateral_norm``, ``neck.fpn_conv``,
``neck.fpn_norm``, ``neck.dilated_encoder_blocks.N.convK.{conv,bn}.*``,
``bbox_head.{cls_subnet,bbox_subnet}.N.{conv,bn}.*``, ``bbox_head.{cls_score,bbox_pred,
object_pred}.*``.

`yolof_tiny_dc5` is the one departure, a configurable choice for small objects (the part detector's
hands and feet): the paper's DC5 trunk (layer4 dilated, output stride 16) with anchors of 8..128
pixels. The full-size builders are the paper's C5 models, stride 32, anchors 32..512.

The forward pass returns raw maps only, so the network exports to ONNX as it is; anchors, delta
decoding and NMS are in `models.detection`. The released mmdet YOLOF weights are caffe style
(``style="caffe"``, `models.detection.CAFFE_BGR` input); models we train are pytorch style with
ImageNet RGB input (`models.detection.IMAGENET_RGB`). Each model carries its `normalization`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.detection import ANCHOR_SIZES, CAFFE_BGR, IMAGENET_RGB, Normalization
from models.layers import FrozenBatchNorm2d
from models.registry import register
from models.resnet2d import NormLayer, ResNetC5, Style

OBJECTNESS_EXP_MAX = 1e8
PRIOR_PROBABILITY = 0.01
HEAD_INIT_STD = 0.01
COCO_CLASSES = 80
PAPER_INPUT_SHAPE = (3, 800, 1216)
TINY_INPUT_SHAPE = (3, 256, 256)
SMALL_ANCHOR_SIZES = (8, 16, 32, 64, 128)
"""`yolof_tiny_dc5`'s anchors: the paper's five octaves, two octaves smaller (hands are ~10 px)."""


class ConvModule(nn.Module):
    """3x3 or 1x1 conv (no bias) + BatchNorm + ReLU, named like mmcv's ``ConvModule``.

    N,C_in,H,W -> N,C_out,H,W (stride 1, padding keeps the size).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1
    ) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=padding,
            dilation=dilation,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """N,C_in,H,W -> N,C_out,H,W."""
        return self.activate(self.bn(self.conv(x)))


class DilatedBottleneck(nn.Module):
    """Residual block of the encoder: 1x1 -> dilated 3x3 -> 1x1 (each conv + BN + ReLU) + input.

    N,C,H,W -> N,C,H,W; there is no activation after the sum, as in mmdet.
    """

    def __init__(self, channels: int, mid_channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, mid_channels, 1)
        self.conv2 = ConvModule(mid_channels, mid_channels, 3, dilation=dilation)
        self.conv3 = ConvModule(mid_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """N,C,H,W -> N,C,H,W."""
        out = self.conv1(x)  # N,mid,H,W
        out = self.conv2(out)  # N,mid,H,W
        out = self.conv3(out)  # N,C,H,W
        return out + x


class DilatedEncoder(nn.Module):
    """YOLOF neck: 1x1 projection + BN, 3x3 + BN, then dilated residual blocks.

    N,C5,H,W -> N,out_channels,H,W.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        block_mid_channels: int,
        block_dilations: Sequence[int],
    ) -> None:
        super().__init__()
        self.lateral_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.lateral_norm = nn.BatchNorm2d(out_channels)
        self.fpn_conv = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.fpn_norm = nn.BatchNorm2d(out_channels)
        self.dilated_encoder_blocks = nn.Sequential(
            *(
                DilatedBottleneck(out_channels, block_mid_channels, dilation)
                for dilation in block_dilations
            )
        )

        for conv in (self.lateral_conv, self.fpn_conv):  # mmcv's caffe2_xavier_init
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)
        for module in self.dilated_encoder_blocks.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=HEAD_INIT_STD)

    def forward(self, c5: Tensor) -> Tensor:
        """N,C5,H,W -> N,out_channels,H,W."""
        out = self.lateral_norm(self.lateral_conv(c5))  # N,C,H,W
        out = self.fpn_norm(self.fpn_conv(out))  # N,C,H,W
        return self.dilated_encoder_blocks(out)  # N,C,H,W


class YOLOFHead(nn.Module):
    """Classification and box subnets with implicit objectness.

    Outputs, for A anchors and K classes: cls logits N,A*K,H,W (channel ``a * K + k``, already
    combined with objectness) and box deltas N,A*4,H,W (channel ``a * 4 + (dx, dy, dw, dh)``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_anchors: int,
        num_cls_convs: int = 2,
        num_reg_convs: int = 4,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_subnet = nn.Sequential(
            *(ConvModule(in_channels, in_channels, 3) for _ in range(num_cls_convs))
        )
        self.bbox_subnet = nn.Sequential(
            *(ConvModule(in_channels, in_channels, 3) for _ in range(num_reg_convs))
        )
        self.cls_score = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        self.object_pred = nn.Conv2d(in_channels, num_anchors, 3, padding=1)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=HEAD_INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.constant_(
            self.cls_score.bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        )

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """N,C,H,W -> (cls logits N,A*K,H,W, box deltas N,A*4,H,W)."""
        cls_score = self.cls_score(self.cls_subnet(features))  # N,A*K,H,W
        batch, _, height, width = cls_score.shape
        cls_score = cls_score.view(batch, -1, self.num_classes, height, width)  # N,A,K,H,W
        reg_features = self.bbox_subnet(features)  # N,C,H,W
        bbox_deltas = self.bbox_pred(reg_features)  # N,A*4,H,W
        objectness = self.object_pred(reg_features)  # N,A,H,W
        objectness = objectness.view(batch, -1, 1, height, width)  # N,A,1,H,W
        normalized = (
            cls_score
            + objectness
            - torch.log(
                1.0
                + torch.clamp(cls_score.exp(), max=OBJECTNESS_EXP_MAX)
                + torch.clamp(objectness.exp(), max=OBJECTNESS_EXP_MAX)
            )
        )  # N,A,K,H,W
        return normalized.view(batch, -1, height, width), bbox_deltas  # N,A*K,H,W; N,A*4,H,W


class YOLOF(nn.Module):
    """Single-level detector: backbone C5 -> dilated encoder -> head; raw maps out.

    Attributes:
        input_shape: per-sample input C,H,W the model is built for (H, W multiples of 32).
        num_classes: K.
        anchor_sizes: anchor sides in input pixels (A = len(anchor_sizes) per location).
        stride: output stride S (32; 16 with a DC5 backbone), the anchor grid's step.
        normalization: the input normalisation its weights expect (see `models.detection`).
        head_prefixes: `state_dict` key prefixes of the class-count-dependent layer (for
            re-initialising the head when fine-tuning to other classes).

    Input N,3,H,W float32 normalised; output (cls logits N,A*K,H/S,W/S, deltas N,A*4,H/S,W/S).
    """

    head_prefixes: tuple[str, ...] = ("bbox_head.cls_score.",)

    def __init__(
        self,
        backbone: ResNetC5,
        neck: DilatedEncoder,
        bbox_head: YOLOFHead,
        input_shape: tuple[int, int, int],
        normalization: Normalization,
        anchor_sizes: tuple[int, ...] = ANCHOR_SIZES,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = bbox_head
        self.input_shape = input_shape
        self.num_classes = bbox_head.num_classes
        self.anchor_sizes = anchor_sizes
        self.stride = backbone.stride
        self.normalization = normalization

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """N,3,H,W -> (N,A*K,H/S,W/S logits, N,A*4,H/S,W/S deltas)."""
        c5 = self.backbone(images)  # N,C5,H/S,W/S
        features = self.neck(c5)  # N,C,H/S,W/S
        return self.bbox_head(features)


@dataclass(frozen=True)
class _Architecture:
    """The sizes that tell one YOLOF variant from another."""

    blocks_per_stage: tuple[int, int, int, int]
    base_width: int
    encoder_width: int
    block_mid_channels: int
    block_dilations: tuple[int, ...]
    input_shape: tuple[int, int, int]
    c5_dilation: int = 1
    anchor_sizes: tuple[int, ...] = ANCHOR_SIZES


_R50 = _Architecture((3, 4, 6, 3), 64, 512, 128, (2, 4, 6, 8), PAPER_INPUT_SHAPE)
_R101 = _Architecture((3, 4, 23, 3), 64, 512, 128, (2, 4, 6, 8), PAPER_INPUT_SHAPE)
_TINY = _Architecture((1, 1, 1, 1), 16, 128, 32, (2, 4), TINY_INPUT_SHAPE)
_TINY_DC5 = _Architecture(
    (1, 1, 1, 1), 16, 128, 32, (2, 4, 6, 8), TINY_INPUT_SHAPE, 2, SMALL_ANCHOR_SIZES
)


def _yolof(
    arch: _Architecture, num_classes: int, frozen_bn: bool, style: Style, frozen_stages: int
) -> YOLOF:
    """Assemble a YOLOF; `frozen_bn` swaps every backbone BatchNorm for the frozen one."""
    norm_layer: NormLayer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    backbone = ResNetC5(
        arch.blocks_per_stage, arch.base_width, norm_layer, style, frozen_stages, arch.c5_dilation
    )
    neck = DilatedEncoder(
        backbone.out_channels, arch.encoder_width, arch.block_mid_channels, arch.block_dilations
    )
    head = YOLOFHead(arch.encoder_width, num_classes, len(arch.anchor_sizes))
    normalization = CAFFE_BGR if style == "caffe" else IMAGENET_RGB
    return YOLOF(backbone, neck, head, arch.input_shape, normalization, arch.anchor_sizes)


@register("yolof_r50")
def yolof_r50(
    num_classes: int = COCO_CLASSES,
    frozen_bn: bool = True,
    style: Style = "pytorch",
    frozen_stages: int = 1,
) -> YOLOF:
    """YOLOF with a ResNet-50 C5 backbone (44.16M parameters with 80 classes).

    Defaults follow mmdet's fine-tuning set-up: backbone BN frozen, stem and layer1 frozen.
    Use ``style="caffe"`` for mmdet's released YOLOF checkpoints.
    """
    return _yolof(_R50, num_classes, frozen_bn, style, frozen_stages)


@register("yolof_r101")
def yolof_r101(
    num_classes: int = COCO_CLASSES,
    frozen_bn: bool = True,
    style: Style = "pytorch",
    frozen_stages: int = 1,
) -> YOLOF:
    """YOLOF with a ResNet-101 C5 backbone (63.15M parameters with 80 classes); the report's.

    Defaults as `yolof_r50`.
    """
    return _yolof(_R101, num_classes, frozen_bn, style, frozen_stages)


@register("yolof_tiny")
def yolof_tiny(
    num_classes: int = COCO_CLASSES,
    frozen_bn: bool = False,
    style: Style = "pytorch",
    frozen_stages: int = -1,
) -> YOLOF:
    """Small YOLOF (same code) for tests and for detectors trained here from scratch.

    ResNet blocks (1, 1, 1, 1) with base width 16 (C5 = 512), encoder width 128, two dilated
    blocks; input 3x256x256. Nothing is frozen by default, since it trains from scratch.
    """
    return _yolof(_TINY, num_classes, frozen_bn, style, frozen_stages)


@register("yolof_tiny_dc5")
def yolof_tiny_dc5(
    num_classes: int = COCO_CLASSES,
    frozen_bn: bool = False,
    style: Style = "pytorch",
    frozen_stages: int = -1,
) -> YOLOF:
    """`yolof_tiny` on a stride-16 feature with small anchors, for small objects (body parts).

    The paper's DC5 trunk (layer4 keeps stride 16, its 3x3 convs dilated by 2), four dilated
    encoder blocks (2, 4, 6, 8) so the encoder still sees the whole person, and anchors of
    8..128 pixels (`SMALL_ANCHOR_SIZES`); input 3x256x256, output grid 16x16.
    """
    return _yolof(_TINY_DC5, num_classes, frozen_bn, style, frozen_stages)
