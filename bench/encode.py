"""Annotated-video encoder throughput: the pipeline's MP4 chain alone, on real frames.

    python -m bench.encode [--clip ../shared/media/skeleton_demo.mp4] [--frames 28]

The clip's first frames are decoded and scaled once (to 640x480 and to 1920x1080), held in
memory, and pushed through an ``appsrc`` into `pipeline.annotated.annotated_chain`; the time from
PLAYING to end-of-stream is the chain's alone (RGB to I420, x264, MP4), as the stream's thread
pays it. Prints one JSON line per size: frames per second and the file's bit rate.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import islice
from pathlib import Path

from media.frames import pack_rgb
from media.gst import NS_PER_S, error_text, init, rgb_caps, wait_eos
from pipeline.annotated import annotated_chain
from pipeline.sources import iterate_frames

from gi.repository import Gst  # isort: skip  (media.gst has required the version)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared" / "media" / "skeleton_demo.mp4"
SIZES = ((640, 480), (1920, 1080))
FPS = 28
EOS_TIMEOUT_S = 300


def encode_fps(clip: Path, width: int, height: int, frames: int, out: Path) -> dict[str, float]:
    """Frames per second of the annotated chain on `frames` frames of `clip` at the size."""
    init()
    pictures = [rgb for _, _, rgb in islice(iterate_frames(str(clip), width, height), frames)]
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps={rgb_caps(width, height, FPS)} ! "
        + " ! ".join(annotated_chain(out))
    )
    source = pipeline.get_by_name("src")
    source.set_property("max-bytes", 0)  # hold every frame: the pushes below never block
    for index, rgb in enumerate(pictures):
        buffer = Gst.Buffer.new_wrapped(pack_rgb(rgb))
        buffer.pts = index * NS_PER_S // FPS
        buffer.duration = NS_PER_S // FPS
        source.emit("push-buffer", buffer)
    source.emit("end-of-stream")
    started = time.perf_counter()
    pipeline.set_state(Gst.State.PLAYING)
    message = wait_eos(pipeline, EOS_TIMEOUT_S)
    seconds = time.perf_counter() - started
    pipeline.set_state(Gst.State.NULL)
    if message is None or message.type != Gst.MessageType.EOS:
        raise RuntimeError(f"{out}: {error_text(message) if message else 'no end of stream'}")
    return {
        "width": width,
        "height": height,
        "frames": len(pictures),
        "fps": len(pictures) / seconds,
        "mbit_per_s": out.stat().st_size * 8 * FPS / len(pictures) / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=FPS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for width, height in SIZES:
            out = Path(folder) / f"{height}.mp4"
            print(json.dumps(encode_fps(args.clip, width, height, args.frames, out)))


if __name__ == "__main__":
    main()
