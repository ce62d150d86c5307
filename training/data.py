"""Reading a synthetic split for training: labels, part ground truth, keypoints, decoded frames.

A split directory (written by `run.py synth`) holds ``videos/<name>.mp4``, the scorer's
``gt_vid_result.json`` / ``gt_part_result.json`` and ``keypoints.json`` (COCO-17 keypoints and the
box of every person in every frame; schema in `tps.synth`'s writer). `Split` gives them one API:

    split = Split.open("data/train")
    split.videos                       # sorted video names
    split.labels["train_0_00003"]      # action
    split.gt.parts[video][frame_key]   # annotated humans (every 5th frame)
    split.keypoints(video)[i]          # persons in frame i: box + (17, 3) x, y, visibility
    split.frames(video, [0, 5])        # (2, H, W, 3) uint8 RGB, decoded with GStreamer

Boxes are (x1, y1, x2, y2) frame pixels with inclusive corners, as the ground truth writes them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from tps.formats import FormatError, GroundTruth, GtHuman, read_gt
from tps.video import VideoError, read_frames
from tps.vocabulary import frame_index

log = logging.getLogger(__name__)

VIDEOS_DIR = "videos"
VIDEO_SUFFIX = ".mp4"
KEYPOINTS_FILE = "keypoints.json"
NUM_KEYPOINTS = 17


class DataError(Exception):
    """A split directory is missing a file, or a file does not have the expected content."""


@dataclass(frozen=True)
class PersonKeypoints:
    """One person in one frame, from ``keypoints.json``.

    Attributes:
        track: the person's index in its video (stable over frames).
        box_xyxy: (4,) float32 box of the visible person, inclusive pixel corners.
        keypoints_xyv: (17, 3) float32 COCO-17 x, y (frame pixels) and visibility
            (0 outside the frame, 1 occluded, 2 visible).
    """

    track: int
    box_xyxy: np.ndarray
    keypoints_xyv: np.ndarray


@dataclass(frozen=True)
class Split:
    """A split directory opened for training; see the module docstring.

    Use `Split.open`. Keypoints are parsed on first use and kept; frames are decoded on every
    call (callers cache what they reuse).
    """

    directory: Path
    gt: GroundTruth
    _keypoint_cache: dict[str, list[list[PersonKeypoints]]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def open(cls, directory: str | Path) -> Split:
        """Read the ground truth of a split and check its videos exist.

        Raises:
            DataError: the directory, a ground-truth file or a video is missing or malformed.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise DataError(f"split directory {directory} does not exist")
        try:
            gt = read_gt(directory)
        except FormatError as error:
            raise DataError(f"split {directory}: {error}") from error
        split = cls(directory, gt)
        missing = [video for video in split.videos if not split.video_path(video).is_file()]
        if missing:
            raise DataError(
                f"split {directory}: {len(missing)} videos have no file, e.g. "
                f"{split.video_path(missing[0])}"
            )
        return split

    @property
    def videos(self) -> list[str]:
        """Video names, sorted."""
        return sorted(self.gt.labels)

    @property
    def labels(self) -> dict[str, str]:
        """Video name -> action."""
        return self.gt.labels

    def video_path(self, video: str) -> Path:
        """The video file of `video`."""
        return self.directory / VIDEOS_DIR / f"{video}{VIDEO_SUFFIX}"

    def annotated(self, video: str) -> dict[int, list[GtHuman]]:
        """Frame index -> annotated humans (with part boxes and states), for annotated frames."""
        frames = self.gt.parts.get(video, {})
        return {frame_index(key): humans for key, humans in sorted(frames.items())}

    @cached_property
    def _keypoint_file(self) -> dict[str, Any]:
        path = self.directory / KEYPOINTS_FILE
        try:
            content = json.loads(path.read_text())
        except OSError as error:
            raise DataError(f"cannot read {path}: {error.strerror}") from error
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: not valid JSON at line {error.lineno}") from error
        videos = content.get("videos") if isinstance(content, dict) else None
        if not isinstance(videos, dict):
            raise DataError(f"{path}: expected an object with a 'videos' object")
        return videos

    def keypoints(self, video: str) -> list[list[PersonKeypoints]]:
        """Persons of every frame of `video`: element i lists the persons in frame i.

        Raises:
            DataError: `keypoints.json` lacks the video or has a malformed entry.
        """
        if video not in self._keypoint_cache:
            path = self.directory / KEYPOINTS_FILE
            entry = self._keypoint_file.get(video)
            if entry is None:
                raise DataError(f"{path}: no keypoints for video {video!r}")
            self._keypoint_cache[video] = _parse_video_keypoints(entry, f"{path}: {video}")
        return self._keypoint_cache[video]

    def frames(self, video: str, indices: Iterable[int] | None = None) -> np.ndarray:
        """Decode frames of `video`: (T, H, W, 3) uint8 RGB (all frames when indices is None).

        Raises:
            DataError: the video cannot be decoded or lacks a requested frame.
        """
        try:
            return read_frames(self.video_path(video), indices)
        except VideoError as error:
            raise DataError(f"split {self.directory}: {error}") from error


def _parse_video_keypoints(entry: object, where: str) -> list[list[PersonKeypoints]]:
    """One video's entry of ``keypoints.json`` -> persons per frame."""
    frames = entry.get("frames") if isinstance(entry, Mapping) else None
    if not isinstance(frames, Sequence):
        raise DataError(f"{where}: expected an object with a 'frames' list")
    parsed = []
    for index, persons in enumerate(frames):
        if not isinstance(persons, Sequence):
            raise DataError(f"{where}: frame {index}: expected a list of persons")
        parsed.append([_parse_person(person, f"{where}: frame {index}") for person in persons])
    return parsed


def _parse_person(person: object, where: str) -> PersonKeypoints:
    if not isinstance(person, Mapping):
        raise DataError(f"{where}: expected a person object, got {type(person).__name__}")
    try:
        box = np.asarray(person["box"], dtype=np.float32)
        keypoints = np.asarray(person["keypoints"], dtype=np.float32)
        track = int(person.get("person", -1))
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{where}: malformed person ({error})") from error
    keypoints = keypoints.reshape(-1, 3) if keypoints.size == NUM_KEYPOINTS * 3 else keypoints
    if box.shape != (4,) or keypoints.shape != (NUM_KEYPOINTS, 3):
        raise DataError(
            f"{where}: expected box (4,) and keypoints (17, 3); got {box.shape} and "
            f"{keypoints.shape}"
        )
    return PersonKeypoints(track, box, keypoints)
