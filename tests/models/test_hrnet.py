"""HRNet: exact size and mmpose keys, heatmap decoding, flip test and crop geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from models import hrnet
from models.registry import ModelError


def _meta(builder, **kwargs) -> hrnet.HRNet:
    with torch.device("meta"):
        return builder(**kwargs)


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        pytest.param(hrnet.hrnet_w48, 63_595_745, id="w48"),
        pytest.param(hrnet.hrnet_w32, 28_536_113, id="w32"),
    ],
)
def test_parameter_counts_with_17_keypoints(builder, expected: int) -> None:
    assert sum(p.numel() for p in _meta(builder).parameters()) == expected


def test_w48_maps_256x192_to_64x48_heatmaps() -> None:
    model = _meta(hrnet.hrnet_w48)
    with torch.device("meta"):
        heatmaps = model(torch.empty(2, 3, 256, 192))
    assert tuple(heatmaps.shape) == (2, 17, 64, 48)


def test_keys_are_mmpose_1x() -> None:
    state = _meta(hrnet.hrnet_w48).state_dict()
    expected_shapes = {
        "backbone.conv1.weight": (64, 3, 3, 3),
        "backbone.bn1.running_mean": (64,),
        "backbone.conv2.weight": (64, 64, 3, 3),
        "backbone.layer1.0.conv3.weight": (256, 64, 1, 1),
        "backbone.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.layer1.0.downsample.1.weight": (256,),
        "backbone.transition1.0.0.weight": (48, 256, 3, 3),
        "backbone.transition1.1.0.0.weight": (96, 256, 3, 3),
        "backbone.transition3.3.0.0.weight": (384, 192, 3, 3),
        "backbone.stage2.0.branches.1.3.conv2.weight": (96, 96, 3, 3),
        "backbone.stage2.0.fuse_layers.0.1.0.weight": (48, 96, 1, 1),
        "backbone.stage2.0.fuse_layers.1.0.0.0.weight": (96, 48, 3, 3),
        "backbone.stage3.3.fuse_layers.2.0.0.0.weight": (48, 48, 3, 3),
        "backbone.stage3.3.fuse_layers.2.0.1.0.weight": (192, 48, 3, 3),
        "backbone.stage4.2.fuse_layers.0.3.0.weight": (48, 384, 1, 1),
        "head.final_layer.weight": (17, 48, 1, 1),
        "head.final_layer.bias": (17,),
    }
    assert {key: tuple(state[key].shape) for key in expected_shapes} == expected_shapes
    # the last module of the last stage only outputs the high-resolution branch
    assert not any(key.startswith("backbone.stage4.2.fuse_layers.1.") for key in state)
    assert any(key.startswith("backbone.stage4.1.fuse_layers.3.") for key in state)


def test_tiny_forward_and_frozen_bn() -> None:
    torch.manual_seed(0)
    model = hrnet.hrnet_tiny(num_classes=5, frozen_bn=True).train()
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    heatmaps = model(torch.randn(1, 3, 256, 192))
    assert heatmaps.shape == (1, 5, 64, 48)


def test_tiny_v2_heads_all_branches() -> None:
    """HRNetV2's head: the four branches (8 + 16 + 32 + 64 channels) mixed, frozen BN included."""
    torch.manual_seed(0)
    model = hrnet.hrnet_tiny_v2(frozen_bn=True).train()
    assert isinstance(model.head, hrnet.ConcatHeatmapHead)
    assert model.head.final_layer.in_channels == 120
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert sum(p.numel() for p in hrnet.hrnet_tiny_v2().parameters()) == 286_601
    assert sum(p.numel() for p in hrnet.hrnet_small_v2().parameters()) == 1_492_801
    assert model(torch.randn(2, 3, 128, 96)).shape == (2, 17, 32, 24)


def _heatmap(points: dict[tuple[int, int], float], height: int = 8, width: int = 6):
    """One 1,1,H,W heatmap with the given {(x, y): value} pixels, zeros elsewhere."""
    maps = torch.zeros(1, 1, height, width)
    for (x, y), value in points.items():
        maps[0, 0, y, x] = value
    return maps


@pytest.mark.parametrize(
    ("points", "expected_xy"),
    [
        pytest.param({(3, 4): 1.0, (4, 4): 0.5, (3, 3): 0.2}, (3.25, 3.75), id="right-and-up"),
        pytest.param({(3, 4): 1.0, (2, 4): 0.5, (3, 5): 0.2}, (2.75, 4.25), id="left-and-down"),
        pytest.param({(3, 4): 1.0}, (3.0, 4.0), id="flat-neighbours"),
        pytest.param({(1, 4): 1.0, (2, 4): 0.9, (1, 5): 0.5}, (1.0, 4.25), id="x-at-1-no-shift"),
        pytest.param({(0, 0): 1.0, (1, 0): 0.9}, (0.0, 0.0), id="corner"),
        pytest.param({(5, 6): 1.0, (4, 6): 0.9}, (5.0, 6.0), id="right-edge"),
    ],
)
def test_decode_heatmaps_quarter_pixel_rule(points, expected_xy) -> None:
    keypoints_xy, scores = hrnet.decode_heatmaps(_heatmap(points))
    assert keypoints_xy[0, 0].tolist() == pytest.approx(expected_xy)
    assert scores[0, 0].item() == pytest.approx(1.0)


def test_decode_heatmaps_batch_and_keypoints() -> None:
    maps = torch.zeros(2, 3, 8, 6)
    maps[1, 2, 5, 2] = 0.7
    keypoints_xy, scores = hrnet.decode_heatmaps(maps)
    assert keypoints_xy.shape == (2, 3, 2) and scores.shape == (2, 3)
    assert keypoints_xy[1, 2].tolist() == [2.0, 5.0]
    assert scores[1, 2].item() == pytest.approx(0.7) and scores[0, 0].item() == 0.0


def _gaussian_map(centres_xy: list[tuple[float, float]], hw=(32, 24), sigma=2.0) -> torch.Tensor:
    """1,K,H,W heatmaps, one Gaussian (peak 1) per keypoint at a sub-pixel centre."""
    ys, xs = torch.meshgrid(
        torch.arange(hw[0], dtype=torch.float32),
        torch.arange(hw[1], dtype=torch.float32),
        indexing="ij",
    )
    maps = [torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in centres_xy]
    return torch.stack(maps)[None]


def test_dark_finds_the_sub_pixel_centre_the_quarter_rule_misses() -> None:
    centres = [(10.3, 12.7), (5.8, 20.2), (15.5, 9.1)]
    maps = _gaussian_map(centres)
    dark, _ = hrnet.decode_heatmaps(maps, "dark")
    classic, _ = hrnet.decode_heatmaps(maps, "classic")
    truth = torch.tensor(centres)
    assert (dark[0] - truth).abs().max() < 0.01
    assert (classic[0] - truth).abs().max() > 0.2  # (15.5, 9.1) -> (15.25, 9.25)


def test_dark_leaves_border_peaks_and_flat_maps_at_the_arg_max() -> None:
    maps = torch.cat((_gaussian_map([(1.0, 0.6)]), torch.zeros(1, 1, 32, 24)), dim=1)
    dark, scores = hrnet.decode_heatmaps(maps, "dark")
    assert dark[0].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert scores[0, 1] == 0


def test_unknown_heatmap_decoding_is_refused() -> None:
    with pytest.raises(ModelError, match="heatmap decoding 'udp'"):
        hrnet.decode_heatmaps(torch.zeros(1, 1, 8, 8), "udp")  # type: ignore[arg-type]


def test_the_pose_settings_offer_exactly_the_decodings_hrnet_has() -> None:
    from typing import get_args

    from parsing.settings import PoseSettings

    offered = get_args(PoseSettings.model_fields["decoding"].annotation)
    assert offered == hrnet.HEATMAP_DECODINGS


def test_unflip_heatmaps_mirrors_swaps_and_shifts() -> None:
    width = 48
    flipped = torch.zeros(1, 17, 64, width)
    flipped[0, 1, 10, 5] = 1.0  # "left eye" in the flipped crop
    flipped[0, 0, 20, 7] = 1.0  # nose
    restored = hrnet.unflip_heatmaps(flipped)
    # x -> width-1-x (mirror) + 1 (mmpose shift); left eye becomes the right eye
    assert restored[0, 2, 10, width - 1 - 5 + 1].item() == 1.0
    assert restored[0, 1].abs().sum().item() == 0.0
    assert restored[0, 0, 20, width - 1 - 7 + 1].item() == 1.0


def test_flip_test_averages_with_the_shifted_mirror() -> None:
    # A "network" whose 17 heatmaps are all the input's first channel.
    model = nn.Conv2d(3, 17, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[:, 0] = 1.0
    crops = torch.zeros(1, 3, 8, 6)
    crops[0, 0, 3, 2] = 1.0
    with torch.inference_mode():  # the parser's flip test: the mirrored pass brought back, averaged
        plain = model(crops)
        averaged = (plain + hrnet.unflip_heatmaps(model(crops.flip(-1)))) / 2
    assert hrnet.decode_heatmaps(plain)[0][0, 0].tolist() == [2.0, 3.0]
    # half the mass at x=2, half at x=3 (the shift): arg-max x=2, a quarter toward x=3
    assert averaged[0, 0, 3, 2].item() == 0.5 and averaged[0, 0, 3, 3].item() == 0.5
    assert hrnet.decode_heatmaps(averaged)[0][0, 0].tolist() == [2.25, 3.0]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        pytest.param((10, 20, 110, 220), (-33.75, -5.0, 153.75, 245.0), id="tall-widened"),
        pytest.param((0, 0, 300, 100), (-37.5, -200.0, 337.5, 300.0), id="wide-heightened"),
        pytest.param((0, 0, 60, 80), (-7.5, -10.0, 67.5, 90.0), id="already-3-to-4"),
    ],
)
def test_crop_box_for_person(box, expected) -> None:
    crop = hrnet.crop_box_for_person(box)
    assert crop.tolist() == pytest.approx(expected)
    width, height = crop[2] - crop[0], crop[3] - crop[1]
    assert width / height == pytest.approx(192 / 256)


def test_crop_box_for_person_batch_and_bad_shape() -> None:
    crops = hrnet.crop_box_for_person(np.array([[10, 20, 110, 220], [0, 0, 300, 100]]))
    assert crops.shape == (2, 4)
    assert crops[1].tolist() == pytest.approx([-37.5, -200.0, 337.5, 300.0])
    with pytest.raises(ModelError):
        hrnet.crop_box_for_person([1, 2, 3])


def test_heatmap_peak_maps_to_frame_pixels() -> None:
    # person crop (100,200)-(292,456) is 192x256 -> 4 frame pixels per heatmap pixel
    maps = torch.zeros(1, 17, 64, 48)
    maps[0, 9, 32, 24] = 1.0
    maps[0, 9, 32, 25] = 0.5
    keypoints_xy, _ = hrnet.decode_heatmaps(maps)
    frame_xy = hrnet.heatmaps_to_frame(keypoints_xy, np.array([[100, 200, 292, 456]]), (64, 48))
    assert frame_xy.shape == (1, 17, 2)
    assert frame_xy[0, 9].tolist() == pytest.approx([100 + 24.25 * 4, 200 + 32 * 4])


def test_normalize_crops_layout() -> None:
    crops = np.full((2, 4, 3, 3), 255, dtype=np.uint8)
    normalised = hrnet.normalize_crops(crops)
    assert normalised.shape == (2, 3, 4, 3)
    assert normalised[1, 2, 3, 2].item() == pytest.approx((255 - 103.53) / 57.375)
    assert hrnet.normalize_crops(crops[0]).shape == (1, 3, 4, 3)
