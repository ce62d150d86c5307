"""Sources: URI parsing, real decoding of the shared clips, normalisation, RTSP, errors."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from cli import USER_ERRORS
from media.gst import parse_launch, run_until_eos
from pipeline.sources import (
    DEFAULT_RTSP_LATENCY_MS,
    FileSource,
    RtspSource,
    SourceError,
    SynthSource,
    V4l2Source,
    build_source,
    describe_source,
    iterate_frames,
    parse_source,
)

CLIPS = [
    # name, width, height, fps, seconds (from ../shared/media/README.md)
    pytest.param("pose_demo.mp4", 960, 540, 5.0, 1.0, id="pose"),
    pytest.param("skeleton_demo.mp4", 1920, 1080, 28.0, 2.6, id="skeleton"),
    pytest.param("spatiotemporal_demo.mp4", 340, 256, 6.0, 9.5, id="spatiotemporal"),
    pytest.param("structuralize_demo.mp4", 426, 240, 29.97, 10.0, id="structuralize"),
]
FRAME_COUNT_TOLERANCE = 1
"""Frames a container may hold beyond or short of duration x rate (rounding of the last frame)."""
TIMEOUT_S = 20.0


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip name.mp4"  # a space, to prove the path is quoted
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param(
            "rtsp://cam.local:8554/live?transport=udp&latency=50",
            RtspSource(
                "rtsp://cam.local:8554/live?transport=udp&latency=50",
                "rtsp://cam.local:8554/live",
                "udp",
                50,
            ),
            id="rtsp-options",
        ),
        pytest.param(
            "rtsp://user:pw@10.0.0.2/stream?channel=1",
            RtspSource(
                "rtsp://user:pw@10.0.0.2/stream?channel=1",
                "rtsp://user:pw@10.0.0.2/stream?channel=1",
                "tcp",
                DEFAULT_RTSP_LATENCY_MS,
            ),
            id="rtsp-camera-query-kept",
        ),
        pytest.param(
            "v4l2:///dev/video0", V4l2Source("v4l2:///dev/video0", "/dev/video0"), id="v4l2"
        ),
        pytest.param(
            "synth://?seed=3&people=2&frames=12&action=lunge",
            SynthSource("synth://?seed=3&people=2&frames=12&action=lunge", 3, 2, 12, "lunge"),
            id="synth",
        ),
    ],
)
def test_parse_source(uri: str, expected: object) -> None:
    assert parse_source(uri) == expected


def test_parse_file_forms(clip: Path) -> None:
    uri = "file://" + str(clip).replace(" ", "%20")
    assert parse_source(uri) == FileSource(uri, clip)
    assert parse_source(str(clip)) == FileSource(str(clip), clip)


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        pytest.param("http://example.com/a.mp4", "unknown scheme 'http'", id="scheme"),
        pytest.param("file://", "missing file path", id="file-no-path"),
        pytest.param("file://host/a.mp4", "must be local", id="file-remote"),
        pytest.param("rtsp:///live", "missing host", id="rtsp-no-host"),
        pytest.param(
            "rtsp://h/live?transport=sctp", "transport must be tcp or udp", id="transport"
        ),
        pytest.param("rtsp://h/live?latency=soon", "latency must be an integer", id="latency-text"),
        pytest.param("rtsp://h/live?latency=-5", "latency must be >= 0", id="latency-negative"),
        pytest.param("rtsp://h/live?latency=1&latency=2", "repeated query option", id="repeat"),
        pytest.param("v4l2://", "missing device path", id="v4l2-no-device"),
        pytest.param("synth://?people=many", "people must be an integer", id="synth-people"),
        pytest.param("synth://?frames=0", "frames must be >= 1", id="synth-frames"),
        pytest.param("synth://?people=0", "people must be >= 1", id="synth-nobody"),
        pytest.param("synth://?colour=red", "unknown option colour", id="synth-unknown"),
        pytest.param("synth://?action=flying", "unknown action 'flying'", id="synth-action"),
    ],
)
def test_bad_uri_is_one_line_naming_it(uri: str, problem: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse_source(uri)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(uri) in message
    assert problem in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(SourceError, match="no such file") as caught:
        parse_source(str(missing))
    assert str(missing) in str(caught.value)


def test_source_error_is_a_user_error() -> None:
    assert SourceError in USER_ERRORS


@pytest.mark.parametrize(
    ("size", "fps", "expected_tail"),
    [
        pytest.param(
            (None, None),
            None,
            'videoconvert ! videoscale ! capsfilter name=s0_rgb caps="video/x-raw,format=RGB"',
            id="native",
        ),
        pytest.param(
            (320, 240),
            30.0,
            "videorate ! capsfilter name=s0_rgb"
            ' caps="video/x-raw,format=RGB,width=320,height=240,framerate=30/1"',
            id="normalised",
        ),
    ],
)
def test_describe_source_ends_in_rgb_caps(
    clip: Path, size: tuple[int | None, int | None], fps: float | None, expected_tail: str
) -> None:
    description = describe_source(parse_source(str(clip)), *size, fps)
    assert description.startswith(f'filesrc location="{clip}" ! decodebin ! ')
    assert description.endswith(expected_tail)
    parse_launch(f"{description} ! fakesink")  # GStreamer accepts the fragment


@pytest.mark.parametrize(("name", "width", "height", "fps", "seconds"), CLIPS)
def test_clip_decodes_at_its_own_size(
    shared_media: Path, name: str, width: int, height: int, fps: float, seconds: float
) -> None:
    frames = list(iterate_frames(str(shared_media / name), timeout_s=TIMEOUT_S))
    assert abs(len(frames) - seconds * fps) <= FRAME_COUNT_TOLERANCE
    assert [index for index, _, _ in frames] == list(range(len(frames)))
    pts = [pts for _, pts, _ in frames]
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False))
    for _, _, rgb in frames:
        assert rgb.shape == (height, width, 3)
        assert rgb.dtype == np.uint8
    assert frames[0][2].std() > 0  # real pixels, not a blank frame


def test_normalises_to_odd_size_and_rate(shared_media: Path) -> None:
    """325x243 RGB rows are padded to 976 bytes: frames must still come out whole."""
    clip = str(shared_media / "spatiotemporal_demo.mp4")
    frames = list(iterate_frames(clip, 325, 243, 4, TIMEOUT_S))
    assert abs(len(frames) - 9.5 * 4) <= FRAME_COUNT_TOLERANCE
    assert {rgb.shape for _, _, rgb in frames} == {(243, 325, 3)}
    pts = np.array([pts for _, pts, _ in frames])
    np.testing.assert_allclose(np.diff(pts), 1e9 / 4, atol=1)  # evenly spaced at the new rate


def test_rtsp_stream_over_tcp(rtsp_server) -> None:
    url = rtsp_server(
        "( videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1"
        " ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay name=pay0 pt=96 )"
    )
    wanted = 10
    frames = []
    for index, _pts, rgb in iterate_frames(f"{url}?transport=tcp&latency=0", 160, 120, None, 15):
        frames.append(rgb)
        if index + 1 == wanted:
            break
    assert len(frames) == wanted
    assert {rgb.shape for rgb in frames} == {(120, 160, 3)}
    assert frames[0].std() > 0  # the test pattern's colour bars


def test_rtsp_refused_is_a_source_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"rtsp://127.0.0.1:{port}/none?transport=tcp"
    with pytest.raises(SourceError) as caught:
        next(iterate_frames(uri, timeout_s=TIMEOUT_S, stream="cam7"))
    message = str(caught.value)
    assert "'cam7'" in message and repr(uri) in message


def test_undecodable_file_reports_gstreamer_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(SourceError) as caught:
        list(iterate_frames(str(garbage), timeout_s=TIMEOUT_S, stream="bad"))
    message = str(caught.value)
    assert "stream 'bad'" in message and str(garbage) in message
    assert message.count(":") >= 3  # stream: source: element: GStreamer's own message


def test_build_source_bin_feeds_a_pipeline(shared_media: Path) -> None:
    spec = parse_source(str(shared_media / "pose_demo.mp4"))
    pipeline = parse_launch("fakesink name=out")
    source = build_source(spec, "cam0", 64, 48, 5)
    pipeline.add(source)
    assert source.get_static_pad("src") is not None
    assert source.link(pipeline.get_by_name("out"))
    run_until_eos(pipeline, TIMEOUT_S)


def test_synthetic_source_matches_renderer() -> None:
    synth = pytest.importorskip("tps.synth", reason="the synthetic world is not built yet")
    frames = list(iterate_frames("synth://?seed=1&people=2&frames=6", 66, 48, 10, TIMEOUT_S))
    video = synth.SynthVideo(seed=1, size=(66, 48), fps=10, people=2, frames=6)
    assert len(frames) == 6
    assert [pts for _, pts, _ in frames] == [i * 100_000_000 for i in range(6)]
    for index, _, rgb in frames:
        np.testing.assert_array_equal(rgb, video.frame(index))


def test_synthetic_source_is_endless_and_scales_to_odd_sizes() -> None:
    pytest.importorskip("tps.synth", reason="the synthetic world is not built yet")
    frames = iterate_frames("synth://?seed=2&people=1", 65, 47, 25, TIMEOUT_S)
    shapes = [rgb.shape for _, (_, _, rgb) in zip(range(30), frames, strict=False)]
    frames.close()
    assert shapes == [(47, 65, 3)] * 30


def test_synthetic_source_rejects_what_the_renderer_cannot_draw() -> None:
    pytest.importorskip("tps.synth", reason="the synthetic world is not built yet")
    with pytest.raises(SourceError, match="people"):
        next(iterate_frames("synth://?people=1000", 64, 48, 10, TIMEOUT_S))
