"""2D ResNet backbone returning the C5 feature map (stride 32, or 16 dilated), mmdet names.

The layout follows torchvision / mmdet `ResNet` exactly, so an OpenMMLab detector checkpoint loads
by key: `backbone.conv1.weight`, `backbone.bn1.*`, `backbone.layer1.0.conv1.weight`, ...,
`backbone.layerS.0.downsample.{0.weight,1.*}`. There is no classifier (`fc`), as in mmdet.

Two styles place the stride of a down-sampling bottleneck differently; the parameters are the same,
the computation is not, so a checkpoint must be run in the style it was trained in:

* ``pytorch`` (torchvision, mmdet ``style='pytorch'``): the stride is in the 3x3 conv.
* ``caffe`` (Detectron, mmdet ``style='caffe'``, used by mmdet's released YOLOF weights): the stride
  is in the first 1x1 conv.

``c5_dilation=2`` is Detectron's DC5 (the YOLOF paper's ``-DC5`` models): layer4 keeps stride 16 and
its 3x3 convs dilate by 2 instead; the parameters and key names are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from torch import Tensor, nn

NormLayer = Callable[[int], nn.Module]
Style = Literal["pytorch", "caffe"]

EXPANSION = 4
STEM_KERNEL = 7
STEM_STRIDE = 2
STAGE_STRIDES = (1, 2, 2, 2)
C5_STRIDE = 32
C5_DILATIONS = (1, 2)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block with expansion 4; N,C,H,W -> N,planes*4,H/s,W/s."""

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        norm_layer: NormLayer,
        style: Style,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        out_channels = planes * EXPANSION
        stride_1x1, stride_3x3 = (stride, 1) if style == "caffe" else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, stride=stride_1x1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(
            planes,
            planes,
            3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
            bias=False,
        )
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm_layer(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """N,C_in,H,W -> N,C_out,H/stride,W/stride."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetC5(nn.Module):
    """ResNet trunk (stem + 4 stages) returning only C5.

    Args:
        blocks_per_stage: bottlenecks in layer1..layer4, e.g. (3, 4, 6, 3) for ResNet-50.
        base_width: channels of the stem and of layer1's bottleneck (64 in the paper models);
            C5 has ``base_width * 8 * 4`` channels.
        norm_layer: BatchNorm factory; pass `models.layers.FrozenBatchNorm2d` to freeze every
            backbone BN as mmdet does when fine-tuning (``norm_eval=True, requires_grad=False``).
        style: where the stride of a down-sampling block sits (see the module docstring).
        frozen_stages: stages whose parameters do not train: 0 freezes the stem, 1 the stem and
            layer1 (mmdet's YOLOF setting), -1 nothing.
        c5_dilation: 1 for the plain trunk (output stride 32); 2 for DC5 (layer4 without its
            stride, its 3x3 convs dilated by 2: output stride 16).

    Attributes:
        stride: output stride, 32 // c5_dilation.

    Input N,3,H,W float32 (normalised); output N,C5,H/S,W/S float32 (S = `stride`).
    """

    def __init__(
        self,
        blocks_per_stage: Sequence[int],
        base_width: int = 64,
        norm_layer: NormLayer = nn.BatchNorm2d,
        style: Style = "pytorch",
        frozen_stages: int = -1,
        c5_dilation: int = 1,
    ) -> None:
        super().__init__()
        if c5_dilation not in C5_DILATIONS:
            raise ValueError(f"c5_dilation must be one of {C5_DILATIONS}, got {c5_dilation}")
        strides = (*STAGE_STRIDES[:-1], STAGE_STRIDES[-1] // c5_dilation)
        dilations = (1, 1, 1, c5_dilation)
        self.stride = C5_STRIDE // c5_dilation
        self.conv1 = nn.Conv2d(
            3, base_width, STEM_KERNEL, stride=STEM_STRIDE, padding=STEM_KERNEL // 2, bias=False
        )
        self.bn1 = norm_layer(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = base_width
        for index, (num_blocks, stride, dilation) in enumerate(
            zip(blocks_per_stage, strides, dilations, strict=True)
        ):
            planes = base_width * 2**index
            stage = nn.Sequential(
                *(
                    Bottleneck(
                        in_channels if block == 0 else planes * EXPANSION,
                        planes,
                        stride if block == 0 else 1,
                        norm_layer,
                        style,
                        dilation,
                    )
                    for block in range(num_blocks)
                )
            )
            self.add_module(f"layer{index + 1}", stage)
            in_channels = planes * EXPANSION
        self.out_channels = in_channels

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self._frozen_modules(frozen_stages):
            module.requires_grad_(False)

    def _frozen_modules(self, frozen_stages: int) -> list[nn.Module]:
        """The stem (if `frozen_stages` >= 0) and layer1..layer`frozen_stages`."""
        if frozen_stages < 0:
            return []
        stages = [getattr(self, f"layer{index}") for index in range(1, frozen_stages + 1)]
        return [self.conv1, self.bn1, *stages]

    def forward(self, images: Tensor) -> Tensor:
        """N,3,H,W -> N,C5,H/S,W/S, where B = base_width, C5 = 32B and S = `stride` (32 or 16)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # N,B,H/4,W/4
        x = self.layer1(x)  # N,4B,H/4,W/4
        x = self.layer2(x)  # N,8B,H/8,W/8
        x = self.layer3(x)  # N,16B,H/16,W/16
        return self.layer4(x)  # N,32B,H/S,W/S
