"""The `csn` recipe: the report's clip classifier, a video-action head plus six part-label heads.

Part-state parsing is video classification (DESIGN.md §1): every training video gets its action
and six part labels ``<action>_<PartType>_<state>`` (`tps.labels.part_labels`), and a CSN learns
them from clips. Each head's vocabulary is the sorted set of labels in the training split; the
checkpoint's classes store it as ``{"video": [...], "head": [...], "hand": [...], ...}``.

Two layouts, both loadable by one rule (every checkpoint is a multi-head CSN whose classes dict
names the heads it serves; a clip parser loads a list of checkpoints and takes each head from the
file that has it):
- ``mode: shared``: one backbone with 7 linear heads, saved as ``<out>/csn.safetensors``.
- ``mode: separate`` (the report's way): one network per head, trained side by side on the same
  clips, saved as ``<out>/csn_<head>.safetensors`` (7 files), each a one-head CSN.

Clips follow the CSN configs: `models.csn.sample_clip_indices` picks `clip_len` frames every
`frame_interval` frames (random "uniform" clips for training, evenly spread "test" clips for
validation); frames are resized so the shorter side is `short_side` and cropped to
`crop_size` squared (random crop + horizontal flip for training, centre crop otherwise: the clip
parser's `clip_frames`), then normalised with `models.csn.normalize_clip`. The loss is the sum of
the heads' cross-entropies.

Decoded videos are kept in memory already resized, and only every `cache_step`-th frame (a
600-video split of 64-frame 320x240 videos at short side 128 and step 2 is about 1.3 GB).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, FilePath, model_validator
from torch import Tensor, nn

import models
from models.csn import normalize_clip, sample_clip_indices
from parsing.inputs import (
    centre_crop,
    person_clip_crops,
    random_crop_flip,
    resize_short_side,
)
from tps.formats import GroundTruth
from tps.labels import part_labels
from tps.vocabulary import PART_TYPES
from training.common import (
    Checkpointer,
    EpochBatches,
    TrainConfigBase,
    TrainError,
    fit,
    seed_everything,
)
from training.data import Split

log = logging.getLogger(__name__)

VIDEO_HEAD = "video"
HEADS: tuple[str, ...] = (VIDEO_HEAD, *PART_TYPES)
"""Head names in checkpoint order: the action head, then one per part type."""
WEIGHTS_NAME = "csn"
"""Shared mode writes `<out>/csn.safetensors`; separate mode `<out>/csn_<head>.safetensors`."""
UNKNOWN_LABEL = -1
"""Target index of a validation label missing from the training vocabulary (always wrong)."""

Vocabulary = dict[str, list[str]]


class CsnConfig(TrainConfigBase):
    """The csn recipe: network layout, clip sampling and augmentation on top of the loop's."""

    arch: str = Field("ir_csn_tiny", description="registry name of the CSN (ir_/ip_csn_*)")
    mode: Literal["shared", "separate"] = Field(
        "shared", description="one backbone with 7 heads, or one network per head (the report)"
    )
    frozen_bn: bool = Field(
        False,
        description="freeze BatchNorm (the report, fine-tuning pretrained weights); from scratch "
        "a frozen BN normalises nothing, so it is off by default",
    )
    pretrained: FilePath | None = Field(
        None, description="checkpoint to start the backbone from (its head is reinitialised)"
    )
    clip_len: int = Field(8, ge=1, description="frames per clip")
    frame_interval: int = Field(4, ge=1, description="frames between two frames of a clip")
    short_side: int = Field(128, ge=1, description="frames are resized to this shorter side")
    crop_size: int = Field(112, ge=1, description="square crop fed to the network")
    clips: Literal["frame", "person"] = Field(
        "frame",
        description="frame: whole frames (the report's way); person: one clip per person, a"
        " square around its box (the parser then classifies per track and averages)",
    )
    cache_step: int = Field(
        2, ge=1, description="keep every n-th decoded frame in memory; divides frame_interval"
    )
    flip_prob: float = Field(0.5, ge=0, le=1, description="share of mirrored training clips")
    box_scale_jitter: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="person clips: each frame's square is scaled by up to 1 +- this in training,"
        " as a detector's boxes wobble around the ground truth's",
    )
    box_shift_jitter: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="person clips: each frame's square moves by up to this share of its side",
    )
    val_clips: int = Field(3, ge=1, description="evenly spread clips averaged per val video")
    val_max_videos: int | None = Field(
        None, ge=1, description="validation videos used (the first ones; none: all)"
    )

    @model_validator(mode="after")
    def _check_geometry(self) -> CsnConfig:
        if self.frame_interval % self.cache_step:
            raise ValueError(
                f"cache_step ({self.cache_step}) must divide frame_interval ({self.frame_interval})"
            )
        if self.crop_size > self.short_side:
            raise ValueError(
                f"crop_size ({self.crop_size}) must not exceed short_side ({self.short_side})"
            )
        if self.clips == "frame" and (self.box_scale_jitter or self.box_shift_jitter):
            raise ValueError("box_scale_jitter and box_shift_jitter need clips: person")
        return self

    @property
    def person_context(self) -> int:
        """Side of the cached person crops: the clip's square plus room for the jittered ones,
        centred on it with as many pixels on each side (the centre crop is the parser's crop)."""
        margin = self.crop_size * (self.box_scale_jitter + 2 * self.box_shift_jitter) / 2
        return self.crop_size + 2 * math.ceil(margin)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Per-sample network input C,T,H,W."""
        return (3, self.clip_len, self.crop_size, self.crop_size)


# ---------------------------------------------------------------- labels and data


def video_labels(gt: GroundTruth) -> dict[str, dict[str, str]]:
    """Per video, the label of each head: {"video": action, part type: part label}."""
    return {
        video: {VIDEO_HEAD: action, **part_labels(action, gt.parts.get(video, {}))}
        for video, action in gt.labels.items()
    }


def build_vocabulary(labels: Mapping[str, Mapping[str, str]]) -> Vocabulary:
    """Each head's classes: the sorted set of its labels over the training videos."""
    return {head: sorted({per_video[head] for per_video in labels.values()}) for head in HEADS}


def encode_labels(
    labels: Mapping[str, Mapping[str, str]], videos: list[str], vocabulary: Vocabulary
) -> dict[str, np.ndarray]:
    """head -> (V,) int64 class index of each video's label (`UNKNOWN_LABEL` when unseen)."""
    encoded = {}
    for head, classes in vocabulary.items():
        index = {name: position for position, name in enumerate(classes)}
        encoded[head] = np.array(
            [index.get(labels[video][head], UNKNOWN_LABEL) for video in videos], dtype=np.int64
        )
    return encoded


@dataclass(frozen=True)
class ClipVideos:
    """Decoded videos of a split, resized and thinned for clip sampling.

    Attributes:
        names: clip sources: video names, or ``<video>#<track>`` for person clips.
        frames: per source (T_c, h, w, 3) uint8 RGB, shorter side `short_side`, every
            `cache_step`-th frame of the video.
        targets: head -> (N,) int64 class indices, per source.
        videos: the video of each source (None: each source is its own video); validation
            decides per video, averaging its sources as the parser averages a stream's tracks.
    """

    names: list[str]
    frames: list[np.ndarray]
    targets: dict[str, np.ndarray]
    videos: list[str] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def video_of_sources(self) -> list[str]:
        """The video each source belongs to."""
        return self.names if self.videos is None else self.videos


def load_videos(
    split: Split,
    vocabulary: Vocabulary,
    config: CsnConfig,
    max_videos: int | None = None,
) -> ClipVideos:
    """Decode, resize and thin the videos of `split`, with their head targets."""
    labels = video_labels(split.gt)
    names = [video for video in split.videos if video in labels][:max_videos]
    if not names:
        raise TrainError(f"{split.directory}: no labelled videos")
    targets = encode_labels(labels, names, vocabulary)
    items, frames, owners = [], [], []
    for index, name in enumerate(names):
        decoded = split.frames(name)[:: config.cache_step]
        if config.clips == "frame":
            items.append(name)
            frames.append(resize_short_side(decoded, config.short_side))
            owners.append(index)
            continue
        for track, crops in person_sequences(split, name, decoded, config):
            items.append(f"{name}#{track}")
            frames.append(crops)
            owners.append(index)
    log.info("decoded %d videos (%d clips sources) of %s", len(names), len(items), split.directory)
    chosen = np.array(owners, dtype=np.int64)
    return ClipVideos(
        items,
        frames,
        {head: values[chosen] for head, values in targets.items()},
        [names[owner] for owner in owners],
    )


def person_sequences(
    split: Split, video: str, decoded: np.ndarray, config: CsnConfig
) -> Iterator[tuple[int, np.ndarray]]:
    """Per person of a video: (track, (T_c, C, C, 3) crops) of the kept frames.

    C is `config.person_context`: the parser's square (`person_clip_crops`) widened around its
    centre so that its central `crop_size` pixels are the parser's crop at the same scale. A
    person missing from a kept frame keeps its last box; persons seen in fewer than half the kept
    frames are left out.
    """
    context = config.person_context
    widen = context / config.crop_size
    persons = split.keypoints(video)[:: config.cache_step]
    tracks = sorted({person.track for frame in persons for person in frame})
    for track in tracks:
        boxes = [next((p.box_xyxy for p in frame if p.track == track), None) for frame in persons]
        if sum(box is not None for box in boxes) * 2 < len(boxes):
            continue
        last = next(box for box in boxes if box is not None)
        crops = []
        for frame, box in zip(decoded, boxes, strict=False):
            last = last if box is None else box
            centre, half = (last[:2] + last[2:]) / 2, (last[2:] - last[:2]) * widen / 2
            wide = np.concatenate((centre - half, centre + half))
            crops.append(person_clip_crops(frame, wide, context)[0])
        yield track, np.stack(crops)


def jitter_boxes(
    frames_thwc: np.ndarray, config: CsnConfig, rng: np.random.Generator
) -> np.ndarray:
    """Each frame's own (crop_size, crop_size) window of a person's context crops, scaled and
    moved at random within `box_scale_jitter` / `box_shift_jitter`; the frames as they are
    without jitter."""
    if not (config.box_scale_jitter or config.box_shift_jitter):
        return frames_thwc
    count, context, size = len(frames_thwc), frames_thwc.shape[1], config.crop_size
    scale = 1 + rng.uniform(-config.box_scale_jitter, config.box_scale_jitter, count)
    shift = rng.uniform(-config.box_shift_jitter, config.box_shift_jitter, (count, 2))
    theta = torch.zeros(count, 2, 3)  # output -> input, in [-1, 1] units of the context crop
    theta[:, 0, 0] = theta[:, 1, 1] = torch.from_numpy(scale * size / context)
    theta[:, :, 2] = torch.from_numpy(2 * shift * size / context)
    grid = F.affine_grid(theta, [count, 3, size, size], align_corners=False)
    images = torch.from_numpy(frames_thwc).permute(0, 3, 1, 2).float()  # T,3,C,C
    moved = F.grid_sample(images, grid, align_corners=False, padding_mode="border")
    return moved.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


ClipBatch = tuple[Tensor, dict[str, Tensor]]
"""(normalised clips N,3,T,H,W float32, head -> (N,) int64 targets)."""


class ClipBatches(EpochBatches):
    """One epoch of random clips, one per video, in an order fixed by (seed, epoch)."""

    def __init__(self, videos: ClipVideos, config: CsnConfig, epoch: int) -> None:
        super().__init__(len(videos), config.batch_size, config.seed, epoch)
        self.videos = videos
        self.config = config

    def __iter__(self) -> Iterator[ClipBatch]:
        config = self.config
        stride = config.frame_interval // config.cache_step
        for start in range(0, len(self) * config.batch_size, config.batch_size):
            chosen = self.order[start : start + config.batch_size]
            clips = []
            for video in chosen:
                frames = self.videos.frames[video]
                indices = sample_clip_indices(
                    len(frames), config.clip_len, stride, 1, "uniform", self.rng
                )[0]
                clip = jitter_boxes(frames[indices], config, self.rng)
                clips.append(random_crop_flip(clip, config.crop_size, config.flip_prob, self.rng))
            targets = {
                head: torch.from_numpy(values[chosen])
                for head, values in self.videos.targets.items()
            }
            yield normalize_clip(np.stack(clips)), targets


def clip_loss(model: nn.Module, batch: ClipBatch) -> dict[str, Tensor]:
    """The `fit` step: one cross-entropy per head, named `loss_<head>` (fit sums them)."""
    clips, targets = batch
    logits = model(clips)
    return {
        f"loss_{head}": F.cross_entropy(logits[head], target) for head, target in targets.items()
    }


# ---------------------------------------------------------------- networks


class PerHeadNetworks(nn.Module):
    """The report's layout: one one-head CSN per head; forward merges their {head: logits}."""

    def __init__(self, networks: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.networks = nn.ModuleDict(networks)

    def forward(self, clips: Tensor) -> dict[str, Tensor]:
        logits: dict[str, Tensor] = {}
        for network in self.networks.values():
            logits.update(network(clips))  # {head: N,K_head}
        return logits


def build_network(config: CsnConfig, vocabulary: Vocabulary) -> nn.Module:
    """The shared 7-head CSN, or `PerHeadNetworks` of 7 one-head CSNs, per `config.mode`."""
    if config.frozen_bn and config.pretrained is None:
        log.warning("frozen_bn without pretrained weights: BatchNorm will not normalise anything")
    groups = (
        {WEIGHTS_NAME: list(HEADS)}
        if config.mode == "shared"
        else {f"{WEIGHTS_NAME}_{head}": [head] for head in HEADS}
    )
    networks = {}
    for name, heads in groups.items():
        counts = {head: len(vocabulary[head]) for head in heads}
        network = models.build(config.arch, num_classes=counts, frozen_bn=config.frozen_bn)
        if config.pretrained is not None:
            models.load_checkpoint(network, config.pretrained, reinit_head=True)
        networks[name] = network
    return networks[WEIGHTS_NAME] if config.mode == "shared" else PerHeadNetworks(networks)


def saved_networks(model: nn.Module) -> dict[str, nn.Module]:
    """File stem -> network to save: {"csn": model} or {"csn_<head>": network, ...}."""
    if isinstance(model, PerHeadNetworks):
        return dict(model.networks.items())
    return {WEIGHTS_NAME: model}


# ---------------------------------------------------------------- validation and the recipe


ClipClassifier = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""(N, 3, T, S, S) float32 normalised clips -> {head: (N, K_head) logits}."""


@dataclass(frozen=True)
class VideoScores:
    """Per video, each head's class probabilities as the clip parser decides a whole stream.

    Attributes:
        videos: video names, in first-seen order.
        probabilities: head -> (V, K_head) softmax averaged over the evenly spread clips of each
            source, then over the sources (persons) of the video.
        targets: head -> (V,) int64 class index (`UNKNOWN_LABEL`: unseen, never right).
    """

    videos: list[str]
    probabilities: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]

    def accuracy(self, head: str, probabilities: np.ndarray | None = None) -> float:
        """Share of videos whose top-1 class of `head` is right (`probabilities` overrides)."""
        chosen = self.probabilities[head] if probabilities is None else probabilities
        return float(np.mean(chosen.argmax(-1) == self.targets[head]))


def score_videos(
    classify: ClipClassifier, videos: ClipVideos, config: CsnConfig, num_clips: int
) -> VideoScores:
    """Classify `num_clips` centre-cropped clips spread evenly over each source; average them
    per source and the sources per video (the whole-stream decision of
    `parsing.clip_stream.ClipStream.finish`)."""
    stride = config.frame_interval // config.cache_step
    owners = videos.video_of_sources()
    names = list(dict.fromkeys(owners))
    row = {name: position for position, name in enumerate(names)}
    sums: dict[str, np.ndarray] = {}
    counts = np.zeros(len(names))
    targets = {head: np.zeros(len(names), dtype=np.int64) for head in videos.targets}
    for index, frames in enumerate(videos.frames):
        indices = sample_clip_indices(len(frames), config.clip_len, stride, num_clips, "test")
        clips = np.stack([centre_crop(frames[clip], config.crop_size) for clip in indices])
        logits = classify(normalize_clip(clips).numpy())
        video = row[owners[index]]
        counts[video] += 1
        for head, values in logits.items():
            probs = torch.from_numpy(np.asarray(values)).softmax(-1).mean(0).numpy()
            sums.setdefault(head, np.zeros((len(names), len(probs))))[video] += probs
        for head, values in videos.targets.items():
            targets[head][video] = values[index]
    probabilities = {head: total / counts[:, None] for head, total in sums.items()}
    return VideoScores(names, probabilities, targets)


def torch_classifier(model: nn.Module) -> ClipClassifier:
    """A torch CSN as a `ClipClassifier` (eval mode, no gradients)."""

    def classify(clips: np.ndarray) -> dict[str, np.ndarray]:
        model.eval()
        with torch.no_grad():
            return {head: logits.numpy() for head, logits in model(torch.from_numpy(clips)).items()}

    return classify


def evaluate_clips(model: nn.Module, videos: ClipVideos, config: CsnConfig) -> dict[str, float]:
    """Video accuracy per head: `score_videos` with `val_clips` clips per source.

    Returns:
        {"acc_<head>": share of videos whose top-1 label is right, for every head, and
        "acc_parts": the mean over the six part heads}.
    """
    scores = score_videos(torch_classifier(model), videos, config, config.val_clips)
    metrics = {f"acc_{head}": scores.accuracy(head) for head in videos.targets}
    metrics["acc_parts"] = float(np.mean([metrics[f"acc_{head}"] for head in PART_TYPES]))
    return metrics


def train_csn(config: CsnConfig, resume: bool = False) -> dict[str, float]:
    """Train the clip classifier(s) on `config.data`; save them under `config.out`.

    Returns:
        `training.common.fit`'s metrics (val_acc_<head> when `val_data` is set).
    """
    seed_everything(config.seed)
    split = Split.open(config.data)
    labels = video_labels(split.gt)
    vocabulary = build_vocabulary(labels)
    videos = load_videos(split, vocabulary, config)
    validate = None
    if config.val_data is not None:
        val_videos = load_videos(
            Split.open(config.val_data), vocabulary, config, config.val_max_videos
        )

        def validate(model: nn.Module) -> dict[str, float]:
            return evaluate_clips(model, val_videos, config)

    model = build_network(config, vocabulary)
    metrics = fit(
        model,
        lambda epoch: ClipBatches(videos, config, epoch),
        clip_loss,
        config,
        config.out,
        resume=resume,
        validate=validate,
    )
    save_networks(model, config, vocabulary, metrics)
    return metrics


def save_networks(
    model: nn.Module, config: CsnConfig, vocabulary: Vocabulary, metrics: Mapping[str, float]
) -> list[Path]:
    """Write each network of `model` under `config.out`, with the clip geometry the parser
    follows (input shape, frame interval, short side, clips) and the recipe that made it."""
    checkpointer = Checkpointer(config.out)
    paths = []
    for name, network in saved_networks(model).items():
        classes = {head: vocabulary[head] for head in network.num_classes}
        paths.append(
            checkpointer.save_weights(
                network,
                name,
                config.arch,
                classes,
                extra={
                    "input_shape": list(config.input_shape),
                    "clip": {
                        "frame_interval": config.frame_interval,
                        "short_side": config.short_side,
                        "mode": config.mode,
                        "clips": config.clips,
                    },
                    "config": config.model_dump(mode="json"),
                    "data_seed": config.seed,
                    "metrics": dict(metrics),
                },
            )
        )
    return paths
