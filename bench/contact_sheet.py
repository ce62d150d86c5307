"""A contact sheet of annotated real frames: what a config's parser draws on ``shared/media``.

    .venv/bin/python -m bench.contact_sheet [-c configs/camera.yaml] [--frames 4]
        [--out docs/real_contact_sheet.jpg]

Each clip of ``../shared/media`` runs through ``run.py run -c CONFIG --source CLIP --mode
offline`` (every frame parsed, the pipeline's own ``tpsoverlay`` drawing into the annotated MP4);
``--frames`` frames spread over each MP4 become one row of the sheet, each tile scaled to
``TILE_HEIGHT`` pixels high. Saved as JPEG (``--quality``), small enough for docs/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, shared_clips  # noqa: E402
from tps.video import read_frames  # noqa: E402

TILE_HEIGHT = 240
GAP = 4
ANY_PORT_ENDPOINT = "tcp://127.0.0.1:*"


class SheetError(RuntimeError):
    """A clip did not run through the pipeline or left no annotated video."""


def annotated_frames(config: Path, clip: Path, count: int, workdir: Path) -> list[np.ndarray]:
    """``count`` frames, evenly spread, of the clip's annotated MP4 from an offline run."""
    out = workdir / clip.stem
    argv = ["run", "-c", str(config), "--source", str(clip), "--mode", "offline"]
    argv += ["--metrics", "off", "--publish", ANY_PORT_ENDPOINT, "--out", str(out)]
    code = subprocess.run([sys.executable, str(REPO / "run.py"), *argv], check=False).returncode
    videos = sorted(out.glob("*.mp4"))
    if code != 0 or len(videos) != 1:
        raise SheetError(f"{clip}: run exited {code} with annotated videos {videos}")
    frames = read_frames(videos[0])
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    return [frames[index] for index in picks]


def tile(frame_rgb: np.ndarray) -> Image.Image:
    """A frame scaled to `TILE_HEIGHT` pixels high, aspect kept."""
    image = Image.fromarray(frame_rgb)
    width = round(image.width * TILE_HEIGHT / image.height)
    return image.resize((width, TILE_HEIGHT), Image.Resampling.LANCZOS)


def sheet(rows: Sequence[Sequence[np.ndarray]]) -> Image.Image:
    """Rows of frames on one dark canvas, `GAP` pixels apart."""
    tiles = [[tile(frame) for frame in row] for row in rows]
    width = max(sum(t.width for t in row) + GAP * (len(row) - 1) for row in tiles)
    canvas = Image.new("RGB", (width, len(tiles) * (TILE_HEIGHT + GAP) - GAP), (32, 32, 32))
    for y, row in enumerate(tiles):
        x = 0
        for image in row:
            canvas.paste(image, (x, y * (TILE_HEIGHT + GAP)))
            x += image.width + GAP
    return canvas


def main(argv: Sequence[str] | None = None) -> None:
    """Run every clip, draw the sheet, save it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=REPO / "configs" / "camera.yaml")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "real_contact_sheet.jpg")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="contact-sheet-") as workdir:
        rows = [
            annotated_frames(args.config, clip, args.frames, Path(workdir))
            for clip in shared_clips()
        ]
    sheet(rows).save(args.out, quality=args.quality, optimize=True)
    print(f"{args.out}: {len(rows)} clips x {args.frames} frames, {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
