"""Shared fixtures: the real-video folder and an RTSP server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gi
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"
LOOPBACK = "127.0.0.1"
SERVER_STOP_TIMEOUT_S = 5.0


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """``../shared/media`` beside the repository: short real clips with people (see its README)."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real clips not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


@pytest.fixture
def rtsp_server() -> Iterator[Callable[..., str]]:
    """Serve launch lines over RTSP on 127.0.0.1 (free port); yields ``serve(launch, path)``.

    ``serve("( videotestsrc ! x264enc ! rtph264pay name=pay0 pt=96 )", "/cam")`` mounts the line
    and returns its URL, ``rtsp://127.0.0.1:<port>/cam``. The server runs its own GLib main loop
    in a thread and is stopped after the test.
    """
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer.new()
    server.set_address(LOOPBACK)
    server.set_service("0")
    context = GLib.MainContext.new()
    source_id = server.attach(context)
    port = server.get_bound_port()
    loop = GLib.MainLoop.new(context, False)
    thread = threading.Thread(target=loop.run, name="rtsp-server", daemon=True)
    thread.start()
    mounts = server.get_mount_points()

    def serve(launch: str, path: str = "/stream") -> str:
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(launch)
        factory.set_shared(True)
        mounts.add_factory(path, factory)
        return f"rtsp://{LOOPBACK}:{port}{path}"

    try:
        yield serve
    finally:
        server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        loop.quit()
        thread.join(SERVER_STOP_TIMEOUT_S)
        source = context.find_source_by_id(source_id)
        if source is not None:
            source.destroy()


GST_LAUNCH_TIMEOUT_S = 120


@pytest.fixture
def gst_launch(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Run a gst-launch-1.0 line with our elements found through the gst-python loader.

    The line is split on whitespace (no quoting); a throw-away plugin registry in `tmp_path`
    keeps the test from depending on the user's.
    """

    def launch(line: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if sys.prefix != sys.base_prefix:  # the loader's Python finds our dependencies through it
            env["VIRTUAL_ENV"] = sys.prefix
        env["GST_PLUGIN_PATH"] = str(REPO / "plugins")
        env["GST_REGISTRY"] = str(tmp_path / "registry.bin")
        return subprocess.run(
            ["gst-launch-1.0", "-q", *line.split()],
            env=env,
            capture_output=True,
            text=True,
            timeout=GST_LAUNCH_TIMEOUT_S,
            check=False,
        )

    return launch


TEST_CLIP_SHAPE = (3, 4, 32, 32)
"""The tests' clip networks see 4 frames of 32x32: decisions come early and cost little."""


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Randomly initialised tiny networks of every stage, saved in our checkpoint format.

    Real forward passes with known shapes and vocabularies, for tests of the parsers and the
    pipeline that do not depend on what a network has learnt.
    """
    from bench.common import RANDOM_SPECS, random_weights

    specs = {**RANDOM_SPECS, "csn_ir": ("ir_csn_tiny", TEST_CLIP_SHAPE)}
    weights = random_weights(tmp_path_factory.mktemp("random_weights"), specs)
    return {
        "person": weights.person,
        "pose": weights.pose,
        "parts": weights.parts,
        "csn": weights.clip[0],
    }
