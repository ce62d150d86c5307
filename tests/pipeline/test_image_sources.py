"""Still images as sources: a real photo is a stream of one frame, through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.sources import FileSource, ImageSource, iterate_frames, parse_source
from tests.pipeline.test_runner import by_stream, make_config, run_with_subscriber

REAL_PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "ochuman"


@pytest.fixture(scope="module")
def photo() -> Path:
    """A real photo of people (OCHuman, 900x864 JPEG)."""
    path = REAL_PHOTOS / "003799.jpg"
    if not path.is_file():
        pytest.skip(f"real photos not found at {REAL_PHOTOS}")
    return path


@pytest.fixture
def png(photo: Path, tmp_path: Path) -> Path:
    """The photo as an odd-sized PNG, 601x431."""
    path = tmp_path / "photo.png"
    Image.open(photo).convert("RGB").resize((601, 431)).save(path)
    return path


@pytest.mark.parametrize("name", ["p.jpg", "p.JPEG", "p.png"])
def test_image_files_and_file_uris_parse_as_images(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")  # parsing looks at the name only; decoding comes later
    assert parse_source(str(path)) == ImageSource(str(path), path)
    assert parse_source(path.as_uri()) == ImageSource(path.as_uri(), path)


def test_a_video_file_stays_a_video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"")
    assert isinstance(parse_source(str(path)), FileSource)


@pytest.mark.parametrize(
    ("size", "fps"),
    [
        pytest.param((None, None), None, id="own-size-and-rate"),
        pytest.param((320, 240), 10.0, id="scaled-with-a-rate"),
    ],
)
def test_a_photo_is_one_frame_then_end_of_stream(photo, size, fps):
    frames = list(iterate_frames(str(photo), *size, fps=fps))
    assert len(frames) == 1
    index, pts, rgb = frames[0]
    assert (index, pts) == (0, 0)
    expected = Image.open(photo).convert("RGB")
    if size == (None, None):
        assert rgb.shape == (expected.height, expected.width, 3)
        # the decoders differ (libjpeg versions, upsampling) by a few levels at most
        assert np.abs(rgb.astype(int) - np.asarray(expected, dtype=int)).mean() < 2
    else:
        assert rgb.shape == (size[1], size[0], 3)


def test_a_png_keeps_its_odd_size_and_pixels(png):
    [(_, _, rgb)] = iterate_frames(png.as_uri())
    assert np.array_equal(rgb, np.asarray(Image.open(png)))


@pytest.mark.parametrize("mode", ["offline", "live"])
def test_photos_run_through_the_pipeline_to_annotated_pngs(
    random_weights, photo, png, tmp_path, mode
):
    """A JPEG path and a PNG URI: one parsed frame each, then end of stream, and a PNG drawn on."""
    sources = [{"id": "jpg", "uri": str(photo)}, {"id": "png", "uri": png.as_uri()}]
    config = make_config(random_weights, sources, tmp_path / "out", mode=mode)
    runner, events = run_with_subscriber(config)
    assert runner.report.states == {"jpg": "eos", "png": "eos"}
    out = tmp_path / "out"
    annotated_files = {path.name for path in out.iterdir() if path.suffix in (".mp4", ".png")}
    assert annotated_files == {"jpg.png", "png.png"}
    for stream, source in (("jpg", photo), ("png", png)):
        original = np.asarray(Image.open(source).convert("RGB"))
        assert runner.report.progress[stream].frames == 1
        if mode == "offline":  # live mode waits for no subscriber: a photo's one event may go first
            [frame] = by_stream(events, stream, "frame")
            assert (frame["frame_index"], frame["width"], frame["height"]) == (
                0,
                original.shape[1],
                original.shape[0],
            )
        annotated = np.asarray(Image.open(out / f"{stream}.png"))
        assert annotated.shape == original.shape
        # the overlay drew on it (caption, boxes); most of the photo shows through unchanged
        changed = np.any(np.abs(annotated.astype(int) - original) > 8, axis=2).mean()
        assert 0 < changed < 0.5


def test_the_annotated_png_never_overwrites_its_own_photo(random_weights, png):
    """Output folder = the photo's folder and stream id = its stem: the stream fails alone."""
    before = png.read_bytes()
    sources = [{"id": "photo", "uri": str(png)}, {"id": "other", "uri": "synth://?frames=2"}]
    runner, events = run_with_subscriber(make_config(random_weights, sources, png.parent))
    assert runner.report.states == {"photo": "error", "other": "eos"}
    [error] = [e["detail"] for e in by_stream(events, "photo", "status") if e["state"] == "error"]
    assert "would overwrite its own source" in error and str(png) in error
    assert png.read_bytes() == before
