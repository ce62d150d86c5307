"""Write a synthetic split: H.264 videos, Kinetics-TPS ground truth and dense keypoints.

Layout of a split directory::

    videos/<name>.mp4        H.264, one per video; <name> = <split>_<seed>_<index:05d>
    gt_vid_result.json       {video: action}                      (tps.formats.write_gt)
    gt_part_result.json      {video: {img_00001.json: {"humans": [...]}}}, every 5th frame
    keypoints.json           every person in every frame (schema below)
    preview.png              optional contact sheet (tps.synth.preview)

``keypoints.json``::

    {"version": 1,
     "keypoint_names": ["nose", "left_eye", ..., "right_ankle"],        # COCO-17 order
     "videos": {<name>: {"action": str, "width": int, "height": int, "fps": int,
                         "num_frames": int,
                         "frames": [                                     # index = 0-based frame
                             [{"person": int,                            # stable track id
                               "box": [x1, y1, x2, y2],                  # inclusive pixels
                               "keypoints": [[x, y, v], ...17],          # v: 0 outside the frame,
                                                                         # 1 covered by another
                                                                         # person, 2 visible
                               "states": {part: state, ...10}}, ...],    # all 10 parts
                             ...]}}}

A person with no visible pixel in a frame is left out of that frame (in both files). Coordinates
are pixel centres (column j is x = j), rounded to 0.01.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tps.formats import GroundTruth, GtHuman, GtPart, write_gt
from tps.synth.errors import SynthParamError
from tps.synth.motions import SYNTH_ACTIONS, unit_hash
from tps.synth.preview import Shown, write_preview
from tps.synth.video import HumanAnnotation, SynthVideo
from tps.vocabulary import ANNOTATION_STRIDE, frame_key

log = logging.getLogger(__name__)

KEYPOINTS_FILE = "keypoints.json"
PREVIEW_FILE = "preview.png"
VIDEO_DIR = "videos"
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
PREVIEW_VIDEOS = 8
"""Videos shown in the contact sheet."""
_DECIMALS = 2


@dataclass(frozen=True)
class SplitSummary:
    """What `write_split` wrote."""

    directory: Path
    labels: dict[str, str]
    frames: int
    annotated_humans: int
    seconds: float

    def action_counts(self) -> dict[str, int]:
        """Videos per action."""
        return dict(Counter(self.labels.values()))


def video_name(split: str, seed: int, index: int) -> str:
    """The name of video `index` of a split, e.g. ``train_0_00007``."""
    return f"{split}_{seed}_{index:05d}"


def video_seed(split: str, seed: int, index: int) -> int:
    """The `SynthVideo` seed of video `index`: distinct across splits, seeds and indices."""
    return int(unit_hash(zlib.crc32(split.encode()), seed, index) * (1 << 62))


def split_actions(split: str, seed: int, videos: int) -> list[str]:
    """Actions of a split's videos: every action equally often, in a seed-dependent order."""
    rng = np.random.default_rng((zlib.crc32(split.encode()), seed))
    order = [SYNTH_ACTIONS[i] for i in rng.permutation(len(SYNTH_ACTIONS))]
    return [order[index % len(order)] for index in range(videos)]


def _round(values: object) -> object:
    return np.round(np.asarray(values, dtype=np.float64), _DECIMALS).tolist()


def _gt_human(human: HumanAnnotation) -> GtHuman:
    parts = {name: GtPart(box=part.box, verb=part.state) for name, part in human.parts.items()}
    return GtHuman(box=human.box, parts=parts)


def _keypoint_record(human: HumanAnnotation) -> dict[str, object]:
    return {
        "person": human.person,
        "box": list(human.box),
        "keypoints": _round(human.keypoints),
        "states": human.states,
    }


@dataclass
class _Collected:
    """What rendering one video gathers besides its frames."""

    records: list[list[dict[str, object]]] = field(default_factory=list)
    gt_frames: dict[str, list[GtHuman]] = field(default_factory=dict)
    shown: list[Shown] = field(default_factory=list)


def _render(video: SynthVideo, frames: int, collected: _Collected) -> Iterator[np.ndarray]:
    """Yield the first `frames` frames of `video`, collecting keypoints and annotated frames."""
    for index in range(frames):
        image, humans = video.render(index)
        collected.records.append([_keypoint_record(human) for human in humans])
        if index % ANNOTATION_STRIDE == 0:
            collected.gt_frames[frame_key(index)] = [_gt_human(human) for human in humans]
            collected.shown.append((index, image, humans))
        yield image


def write_split(
    out: str | Path,
    videos: int,
    seed: int,
    split: str = "train",
    frames: int = 64,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    preview: bool = False,
    people: int | None = None,
) -> SplitSummary:
    """Render, encode and annotate `videos` videos into directory `out`.

    Deterministic: the same arguments write the same annotations and frames.

    Raises:
        SynthParamError: a count, size or frame rate the generator cannot produce.
        EncodeError: GStreamer failed to write a video.
        tps.formats.FormatError: the ground truth could not be written.
    """
    if videos < 1:
        raise SynthParamError(f"videos: expected at least 1, got {videos}")
    if frames < 1:
        raise SynthParamError(f"frames: expected at least 1, got {frames}")
    if not split or any(c in split for c in "/\\_") or split.strip() != split:
        raise SynthParamError(f"split: expected a plain word such as train or test, got {split!r}")
    out = Path(out)
    try:
        (out / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SynthParamError(f"{out}: cannot create directory ({error.strerror})") from error
    started = time.perf_counter()
    labels: dict[str, str] = {}
    parts: dict[str, dict[str, list[GtHuman]]] = {}
    from tps.synth.encode import encode_h264  # GStreamer loads only once videos are written

    keypoints: dict[str, object] = {}
    sheet: list[tuple[str, list[Shown]]] = []
    annotated = 0
    for index, action in enumerate(split_actions(split, seed, videos)):
        name = video_name(split, seed, index)
        video = SynthVideo(
            video_seed(split, seed, index), size, fps, people=people, frames=frames, action=action
        )
        collected = _Collected()
        encode_h264(_render(video, frames, collected), out / VIDEO_DIR / f"{name}.mp4", fps)
        labels[name], parts[name] = action, collected.gt_frames
        annotated += sum(len(humans) for humans in collected.gt_frames.values())
        keypoints[name] = {
            "action": action,
            "width": video.width,
            "height": video.height,
            "fps": fps,
            "num_frames": frames,
            "frames": collected.records,
        }
        if preview and len(sheet) < PREVIEW_VIDEOS:
            sheet.append((name, collected.shown))
        log.debug("wrote %s (%s, %d people)", name, action, len(video.people))
    write_gt(out, GroundTruth(labels=labels, parts=parts))
    document = {"version": 1, "keypoint_names": list(KEYPOINT_NAMES), "videos": keypoints}
    (out / KEYPOINTS_FILE).write_text(json.dumps(document, separators=(",", ":")))
    if preview:
        write_preview(out / PREVIEW_FILE, [(name, labels[name], shown) for name, shown in sheet])
    return SplitSummary(
        directory=out,
        labels=labels,
        frames=videos * frames,
        annotated_humans=annotated,
        seconds=time.perf_counter() - started,
    )
