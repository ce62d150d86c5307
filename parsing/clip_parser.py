"""The clip parser: sliding clip windows, the CSN ensemble, and the action and part-state decision.

The report parses part states as video classification: each of the 6 part-type heads predicts a
label `<action>_<PartType>_<state>`, and every detected part of that type takes the label's state.
Networks of the ensemble may each carry all heads (one shared backbone) or some of them (the
report's one network per head); per head, the probabilities of the networks that have it are
averaged with the configured weights (the report: video 7.0:1.0 ip:ir, ...).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.csn import normalize_clip, sample_clip_indices
from parsing.inputs import CLIP_SHORT_SIDE, clip_frames
from parsing.networks import Network
from parsing.results import ClipResult, PartState
from tps.labels import PriorTable, state_of_label
from tps.vocabulary import PART_TYPES

VIDEO_HEAD = "video"
TOP_K = 5


class ClipError(ValueError):
    """The clip networks do not fit together (missing heads, different vocabularies)."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Decision:
    """Averaged class probabilities per head for one window: {head: (K_head,) float}."""

    probabilities: Mapping[str, np.ndarray]


class ClipEnsemble:
    """Runs every CSN of the ensemble on a batch of clips and averages probabilities per head."""

    def __init__(self, networks: Sequence[Network], head_weights: Sequence[Mapping[str, float]]):
        self.networks = list(networks)
        self.head_weights = [dict(weights) for weights in head_weights]
        self.classes: dict[str, list[str]] = {}
        for network in self.networks:
            if not isinstance(network.classes, Mapping):
                raise ClipError(
                    f"clip network {network.arch} must name its heads ({{head: classes}}), "
                    f"got a plain class list"
                )
            for head, names in network.classes.items():
                known = self.classes.setdefault(head, list(names))
                if known != list(names):
                    raise ClipError(f"clip networks disagree on the classes of head {head!r}")
        missing = [head for head in (VIDEO_HEAD, *PART_TYPES) if head not in self.classes]
        if missing:
            raise ClipError(f"clip networks lack the heads {missing}")
        first = self.networks[0]
        self.clip_len = int(first.input_shape[1])
        self.crop_size = int(first.input_shape[-1])
        trained = json.loads(first.metadata.get("clip", "{}"))
        self.short_side = int(trained.get("short_side", max(CLIP_SHORT_SIDE, self.crop_size)))
        """Frames are resized to this shorter side before the crop, as in training."""
        self.frame_stride = int(trained.get("frame_interval", 1))
        """The frame step the networks were trained with (the default window stride)."""
        self.clips = str(trained.get("clips", "frame"))
        """What the networks were trained on: whole frames, or person-centred crops."""

    def __call__(self, clips_nthwc: np.ndarray) -> list[Decision]:
        """(N, T, S, S, 3) uint8 clips -> one averaged `Decision` per clip."""
        batch = normalize_clip(clips_nthwc).numpy()  # N,3,T,S,S
        sums = {head: np.zeros((len(batch), len(names))) for head, names in self.classes.items()}
        totals = dict.fromkeys(self.classes, 0.0)
        for network, weights in zip(self.networks, self.head_weights, strict=True):
            outputs = network.run(batch)
            for head, logits in outputs.items():
                weight = weights.get(head, 1.0)
                sums[head] += weight * softmax(logits)
                totals[head] += weight
        averaged = {head: sums[head] / max(totals[head], 1e-12) for head in sums}
        return [
            Decision({head: probs[index] for head, probs in averaged.items()})
            for index in range(len(batch))
        ]


def average(decisions: Sequence[Decision], weights: Sequence[float] | None = None) -> Decision:
    """The mean of several decisions, head by head (the report's multi-clip average), weighted
    by `weights` when given."""
    heads = decisions[0].probabilities
    return Decision(
        {
            head: np.average([d.probabilities[head] for d in decisions], axis=0, weights=weights)
            for head in heads
        }
    )


class ClipParser:
    """Turns decisions into results: the action, its top-5, and the state of each part type.

    With `prior` given, part states come from the prior table's most frequent state for the
    predicted action instead of the part-label heads (the ablation without the label transform).
    """

    def __init__(self, ensemble: ClipEnsemble, prior: PriorTable | None = None) -> None:
        self.ensemble = ensemble
        self.prior = prior

    def result(
        self, decision: Decision, stream: str, start: int, end: int, wall_ns: int
    ) -> ClipResult:
        """The `ClipResult` of a decision over frames `start..end` of `stream`."""
        actions = self.ensemble.classes[VIDEO_HEAD]
        video = decision.probabilities[VIDEO_HEAD]
        order = np.argsort(-video, kind="stable")[:TOP_K]
        label = actions[order[0]]
        part_states = {}
        for type_name in PART_TYPES:
            probs = decision.probabilities[type_name]
            best = int(np.argmax(probs))
            if self.prior is not None:
                part_states[type_name] = PartState(
                    self.prior.state(label, type_name), float(video[order[0]])
                )
            else:
                state = state_of_label(self.ensemble.classes[type_name][best])
                part_states[type_name] = PartState(state, float(probs[best]))
        return ClipResult(
            stream=stream,
            start_frame=start,
            end_frame=end,
            wall_ns=wall_ns,
            label=label,
            score=float(video[order[0]]),
            top5=tuple((actions[i], float(video[i])) for i in order),
            part_states=part_states,
        )


class ClipWindow:
    """One stream's sliding window of resized frames, and its causal running average.

    `push` stores each frame already cut to the network's crop (so memory per frame is small)
    and says when a clip is due: once `span = clip_len * frame_stride` frames are there, and then
    every `hop` frames. `finish` gives the whole-video clips (evenly spread, the report's test
    protocol) from every frame kept, for offline prediction of a finite stream.
    """

    def __init__(
        self,
        clip_len: int,
        crop_size: int,
        *,
        short_side: int = CLIP_SHORT_SIDE,
        frame_stride: int = 1,
        hop: int = 16,
        average_clips: int = 7,
        keep_all: bool = False,
    ) -> None:
        self.clip_len, self.crop_size, self.short_side = clip_len, crop_size, short_side
        self.frame_stride, self.hop = frame_stride, hop
        self.span = clip_len * frame_stride
        self.recent: deque[np.ndarray] = deque(maxlen=self.span)
        self.all_frames: list[np.ndarray] | None = [] if keep_all else None
        self.decisions: deque[Decision] = deque(maxlen=average_clips)
        self.first_index: int | None = None
        self.last_index = -1
        self.frames_seen = 0
        self.since_clip = 0
        self.clips_emitted = 0

    def push(self, frame_index: int, frame_rgb: np.ndarray) -> np.ndarray | None:
        """Add a frame; returns a (T, S, S, 3) clip when one is due, else None."""
        small = clip_frames(frame_rgb[None], self.crop_size, self.short_side)[0]  # S,S,3
        if self.first_index is None:
            self.first_index = frame_index
        self.last_index = frame_index
        self.frames_seen += 1
        self.recent.append(small)
        if self.all_frames is not None:
            self.all_frames.append(small)
        self.since_clip += 1
        if len(self.recent) < self.span or (self.clips_emitted > 0 and self.since_clip < self.hop):
            return None
        self.clips_emitted += 1
        self.since_clip = 0
        return np.stack(list(self.recent)[:: self.frame_stride])  # T,S,S,3

    def add(self, decision: Decision) -> Decision:
        """Record a clip's decision; returns the running average of the last clips."""
        self.decisions.append(decision)
        return average(list(self.decisions))

    def window_start(self) -> int:
        """Frame index of the first frame of the latest clip."""
        return self.last_index - len(self.recent) + 1

    def finish(self, num_clips: int) -> np.ndarray | None:
        """(num_clips, T, S, S, 3) clips spread evenly over every kept frame; None if no frame."""
        frames = self.all_frames if self.all_frames is not None else list(self.recent)
        if not frames:
            return None
        indices = sample_clip_indices(
            len(frames), self.clip_len, self.frame_stride, num_clips, mode="test"
        )  # num_clips,T
        stacked = np.stack(frames)  # F,S,S,3
        return stacked[indices]  # num_clips,T,S,S,3
