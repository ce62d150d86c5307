"""Decode-only throughput: our sources against a bare ``gst-launch-1.0`` line on the same file.

Three ways to decode a file to packed RGB, each timed from PLAYING to end-of-stream:

- ``gst_launch``: ``gst-launch-1.0 filesrc ! decodebin ! videoconvert ! video/x-raw,format=RGB
  ! fakesink sync=false`` in its own process, timed by gst-launch itself ("Execution ended
  after"), so process start-up is excluded. The RGB caps make it convert as our sources do
  (without them ``videoconvert`` passes the decoder's I420 through and does no work);
- ``source_bin``: our source bin (`pipeline.sources.build_source`) into a fakesink, in process,
  prerolled before the clock starts (as gst-launch does);
- ``iterate_frames``: `pipeline.sources.iterate_frames`, every frame copied into numpy; its time
  includes building and prerolling the pipeline, so very short clips favour the other two.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import median
from media.gst import NS_PER_S, error_text, init, wait_eos
from pipeline.sources import build_source, iterate_frames, parse_source

from gi.repository import Gst  # isort: skip  (media.gst has required the version)

GST_LAUNCH = "gst-launch-1.0"
GST_LAUNCH_TIMEOUT_S = 120.0
EOS_TIMEOUT_S = 120.0
EXECUTION_ENDED = re.compile(r"Execution ended after (\d+):(\d+):(\d+(?:\.\d+)?)")
WAYS = ("gst_launch", "source_bin", "iterate_frames")


class DecodeBenchError(RuntimeError):
    """A decode run failed or did not report its time."""


@dataclass(frozen=True)
class DecodeRow:
    """Median frames per second of each way of decoding one file."""

    video: str
    size: tuple[int, int]
    frames: int
    fps: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        gst_fps = self.fps["gst_launch"]
        return {
            "video": self.video,
            "width": self.size[0],
            "height": self.size[1],
            "frames": self.frames,
            **{f"{way}_fps": value for way, value in self.fps.items()},
            "source_bin_over_gst_launch": self.fps["source_bin"] / gst_fps,
            "iterate_frames_over_gst_launch": self.fps["iterate_frames"] / gst_fps,
        }


def gst_launch_seconds(path: Path) -> float:
    """Seconds from PLAYING to EOS of the bare decode line, as gst-launch-1.0 reports them."""
    line = (
        f"filesrc location={path} ! decodebin ! videoconvert ! video/x-raw,format=RGB"
        " ! fakesink sync=false"
    )
    done = subprocess.run(
        [GST_LAUNCH, *line.split()],
        capture_output=True,
        text=True,
        timeout=GST_LAUNCH_TIMEOUT_S,
        check=False,
    )
    found = EXECUTION_ENDED.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise DecodeBenchError(f"{GST_LAUNCH} on {path}: exit {done.returncode}: {done.stderr}")
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def source_bin_seconds(path: Path) -> float:
    """Seconds from PLAYING to EOS of our source bin into a fakesink."""
    init()
    pipeline = Gst.Pipeline.new("decode_bench")
    source = build_source(parse_source(str(path)), "decode")
    sink = Gst.ElementFactory.make("fakesink")
    sink.set_property("sync", False)
    pipeline.add(source)
    pipeline.add(sink)
    source.link(sink)
    try:
        # preroll first, as gst-launch-1.0 does before its clock starts
        pipeline.set_state(Gst.State.PAUSED)
        changed, _, _ = pipeline.get_state(int(EOS_TIMEOUT_S * NS_PER_S))
        if changed == Gst.StateChangeReturn.FAILURE:
            raise DecodeBenchError(f"source bin on {path}: cannot preroll")
        started = time.perf_counter()
        pipeline.set_state(Gst.State.PLAYING)
        message = wait_eos(pipeline, EOS_TIMEOUT_S)
        elapsed = time.perf_counter() - started
        if message is None or message.type == Gst.MessageType.ERROR:
            detail = "timed out" if message is None else error_text(message)
            raise DecodeBenchError(f"source bin on {path}: {detail}")
        return elapsed
    finally:
        pipeline.set_state(Gst.State.NULL)


def iterate_frames_seconds(path: Path) -> tuple[float, int, tuple[int, int]]:
    """(seconds, frames, (width, height)) of pulling every frame through `iterate_frames`."""
    started = time.perf_counter()
    frames = 0
    size = (0, 0)
    for _, _, frame_rgb in iterate_frames(str(path)):
        frames += 1
        size = (frame_rgb.shape[1], frame_rgb.shape[0])
    return time.perf_counter() - started, frames, size


def bench_decode(path: Path, repeats: int) -> DecodeRow:
    """Each way `repeats` times, interleaved (the machine is shared); medians."""
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    frames, size = 0, (0, 0)
    for _ in range(repeats):
        seconds["gst_launch"].append(gst_launch_seconds(path))
        seconds["source_bin"].append(source_bin_seconds(path))
        elapsed, frames, size = iterate_frames_seconds(path)
        seconds["iterate_frames"].append(elapsed)
    return DecodeRow(
        path.name, size, frames, {way: frames / median(values) for way, values in seconds.items()}
    )
