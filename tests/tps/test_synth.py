"""The synthetic world: determinism, exact boxes, states that follow the motion, files on disk."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.main import main
from tps.formats import read_gt
from tps.synth import SYNTH_ACTIONS, EncodeError, SynthParamError, SynthVideo
from tps.synth.body import PART_LABELS, SHAPE_LABELS, Appearance
from tps.synth.dataset import KEYPOINTS_FILE, PREVIEW_FILE, VIDEO_DIR, write_split
from tps.synth.encode import count_frames, encode_h264
from tps.synth.motions import SPECS
from tps.synth.render import plain_background
from tps.synth.video import OCCLUDED, OUTSIDE, VISIBLE
from tps.vocabulary import ACTIONS, PARTS, STATES, frame_key, part_type

SMALL = (160, 120)
BACKGROUND = (0, 0, 255)
GREY = (128, 128, 128)
MARKER = (200, 0, 0)


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    return (float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max()))


def test_actions_and_state_tables_use_the_public_vocabulary() -> None:
    assert len(SYNTH_ACTIONS) >= 8
    assert set(SYNTH_ACTIONS) <= set(ACTIONS)
    for action, spec in SPECS.items():
        assert set(spec.states) == {part_type(part) for part in PARTS}, action
        for names in spec.states.values():
            assert "*" in names
            assert set(names.values()) <= set(STATES), action


def test_same_seed_same_video_and_frames_are_random_access() -> None:
    first = SynthVideo(seed=11, size=SMALL)
    second = SynthVideo(seed=11, size=SMALL)
    for index in range(6):
        first.frame(index)
    image, humans = first.render(20)
    fresh_image, fresh_humans = second.render(20)
    assert np.array_equal(image, fresh_image)
    assert [(h.box, h.parts, h.states) for h in humans] == [
        (h.box, h.parts, h.states) for h in fresh_humans
    ]
    for ours, theirs in zip(humans, fresh_humans, strict=True):
        assert np.array_equal(ours.keypoints, theirs.keypoints)
    other = SynthVideo(seed=12, size=SMALL)
    assert not np.array_equal(other.frame(20), image)
    assert not np.array_equal(first.frame(21), image)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(SynthParamError, match="size"):
        SynthVideo(seed=0, size=(161, 120))
    with pytest.raises(SynthParamError, match="action"):
        SynthVideo(seed=0, action="tobogganing")
    with pytest.raises(SynthParamError, match="people"):
        SynthVideo(seed=0, people=0)
    with pytest.raises(IndexError):
        SynthVideo(seed=0, size=SMALL, frames=4).frame(4)


def _marked(video: SynthVideo, part: str | None, x: float | None = None) -> SynthVideo:
    """The video's single person, grey with `part` in the marker colour, on a plain background."""
    spec = video.people[0]
    colours = {
        name: MARKER if part and label == PART_LABELS[part] else GREY
        for name, label in SHAPE_LABELS.items()
    }
    camera = spec.camera if x is None else replace(spec.camera, x=x)
    person = replace(spec, appearance=Appearance(colours), camera=camera)
    background = plain_background(video.height, video.width, BACKGROUND)
    return SynthVideo.from_people(video.seed, video.action, [person], background)


@pytest.mark.parametrize(
    ("action", "x"),
    [
        pytest.param("front_raises", None, id="front_raises"),
        pytest.param("push_up", None, id="push_up"),
        pytest.param("lunge", 4.0, id="lunge-clipped-at-left-edge"),
    ],
)
def test_boxes_are_tight_around_the_drawn_pixels(action: str, x: float | None) -> None:
    video = SynthVideo(seed=5, size=SMALL, people=1, action=action)
    for index in (0, 9, 17):
        plain = _marked(video, None, x)
        image, humans = plain.render(index)
        drawn = (image != np.array(BACKGROUND, np.uint8)).any(axis=2)
        assert len(humans) == 1
        assert humans[0].box == _mask_box(drawn)
        for part in PARTS:
            image, humans = _marked(video, part, x).render(index)
            marker = (image[:, :, 0] > 0) & (image[:, :, 1] == 0) & (image[:, :, 2] == 0)
            expected = _mask_box(marker)
            if expected is None:
                assert part not in humans[0].parts, (part, index)
            else:
                assert humans[0].parts[part].box == expected, (part, index)
    if x is not None:
        assert humans[0].box[0] == 0.0


def test_hidden_people_are_left_out_and_covered_keypoints_flagged() -> None:
    video = SynthVideo(seed=3, size=SMALL, people=1, action="deadlifting")
    spec = video.people[0]
    background = plain_background(video.height, video.width, BACKGROUND)
    twins = SynthVideo.from_people(video.seed, video.action, [spec, spec], background)
    humans = twins.annotations(7)
    assert [human.person for human in humans] == [1]
    nearer = replace(spec, camera=replace(spec.camera, x=spec.camera.x + 6))
    pair = SynthVideo.from_people(video.seed, video.action, [spec, nearer], background)
    behind = pair.annotations(7)[0]
    assert behind.person == 0
    assert (behind.keypoints[:, 2] == OCCLUDED).sum() >= 3
    assert set(np.unique(behind.keypoints[:, 2])) <= {OUTSIDE, OCCLUDED, VISIBLE}


def _states_over(video: SynthVideo, frames: range) -> dict[str, list[str]]:
    found = defaultdict(list)
    for index in frames:
        for human in video.annotations(index):
            for part, state in human.states.items():
                found[part_type(part)].append(state)
    return found


def _elbow_angle(keypoints: np.ndarray, side: int) -> float:
    shoulder, elbow, wrist = (
        keypoints[5 + side, :2],
        keypoints[7 + side, :2],
        keypoints[9 + side, :2],
    )
    a, b = shoulder - elbow, wrist - elbow
    return math.acos(float(a @ b) / float(np.linalg.norm(a) * np.linalg.norm(b)))


def test_states_follow_the_motion() -> None:
    raises = _states_over(
        SynthVideo(seed=1, size=SMALL, people=1, action="front_raises"), range(64)
    )
    arm = Counter(raises["arm"])
    assert (arm["raise"] + arm["lift"]) / sum(arm.values()) > 0.6
    push_up = SynthVideo(seed=2, size=SMALL, people=1, action="push_up")
    change = defaultdict(list)
    for index in range(1, 70):
        (human,) = push_up.annotations(index)
        before, after = push_up.annotations(index - 1)[0], push_up.annotations(index + 1)[0]
        state = human.states["left_arm"]
        change[state].append(_elbow_angle(after.keypoints, 0) - _elbow_angle(before.keypoints, 0))
    assert np.mean(change["bend"]) < 0 < np.mean(change["unbend"])
    skipping = SynthVideo(seed=4, size=SMALL, people=1, action="skipping_rope")
    height = defaultdict(list)
    for index in range(50):
        (human,) = skipping.annotations(index)
        height[human.states["left_foot"]].append(human.keypoints[15, 1])
    assert np.mean(height["jump"]) < np.mean(height["stand"])


def test_states_have_a_long_tail() -> None:
    shares = {}
    for number, action in enumerate(SYNTH_ACTIONS):
        video = SynthVideo(seed=40 + number, size=SMALL, people=2, action=action)
        for kind, states in _states_over(video, range(0, 64, 5)).items():
            shares[action, kind] = Counter(states).most_common(1)[0][1] / len(states)
    assert min(shares.values()) >= 0.4
    assert sum(share < 1.0 for share in shares.values()) >= len(shares) // 2
    assert np.median(list(shares.values())) < 0.95


def test_encoder_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match="no frames"):
        encode_h264([], tmp_path / "a.mp4", 25)
    with pytest.raises(EncodeError, match="even"):
        encode_h264([np.zeros((9, 16, 3), np.uint8)], tmp_path / "a.mp4", 25)
    with pytest.raises(EncodeError, match="no such file"):
        count_frames(tmp_path / "missing.mp4")


def test_tiny_split_writes_decodable_videos_and_valid_ground_truth(tmp_path: Path) -> None:
    summary = write_split(tmp_path / "a", videos=3, seed=9, split="test", frames=16, size=SMALL)
    write_split(tmp_path / "b", videos=3, seed=9, split="test", frames=16, size=SMALL)
    assert sorted(summary.labels) == ["test_9_00000", "test_9_00001", "test_9_00002"]
    gt = read_gt(tmp_path / "a")
    assert gt.labels == summary.labels
    keypoints = json.loads((tmp_path / "a" / KEYPOINTS_FILE).read_text())
    for name in summary.labels:
        assert count_frames(tmp_path / "a" / VIDEO_DIR / f"{name}.mp4") == (16, *SMALL)
        assert list(gt.parts[name]) == [frame_key(i) for i in (0, 5, 10, 15)]
        for humans in gt.parts[name].values():
            for human in humans:
                x1, y1, x2, y2 = human.box
                assert 0 <= x1 <= x2 < SMALL[0] and 0 <= y1 <= y2 < SMALL[1]
                assert all(v == int(v) for v in human.box)
                for part in human.parts.values():
                    assert part.verb in STATES
        record = keypoints["videos"][name]
        assert (record["num_frames"], len(record["frames"])) == (16, 16)
        assert all(len(person["keypoints"]) == 17 for person in record["frames"][3])
    for file in ("gt_vid_result.json", "gt_part_result.json", KEYPOINTS_FILE):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_cli_writes_the_split_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "split"
    args = ["synth", "--out", str(out), "--videos", "2", "--seed", "1", "--frames", "6"]
    assert main([*args, "--size", "96x64", "--preview"]) == 0
    assert "wrote 2 videos" in capsys.readouterr().out
    assert sorted(read_gt(out).labels) == ["train_1_00000", "train_1_00001"]
    with Image.open(out / PREVIEW_FILE) as preview:
        assert preview.size[0] >= 4 * 96 and preview.size[1] >= 2 * 64
    assert main([*args, "--size", "95x64"]) == 2
    assert "size" in capsys.readouterr().err


def test_importing_the_package_leaves_gstreamer_alone() -> None:
    code = "import sys, tps.synth.dataset; print('gi' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
