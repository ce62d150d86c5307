"""The annotated output's encoders: an MP4 that plays everywhere, or a PNG for a still image.

    tpspublish -> videoconvert -> videoscale -> I420, even width and height -> x264enc
        -> video/x-h264,profile=high -> mp4mux -> filesink          (``.mp4``)
    tpspublish -> videoconvert -> pngenc -> filesink                 (``.png``)

Everything is fixed when the chain is built, or negotiated by GStreamer itself: no pad probe,
no property set from a streaming thread (an earlier version set the crop and bitrate from a caps
probe, and a mixed-source run hung under load).

- **4:2:0 chroma.** The overlay hands out packed RGB; fed that, x264 encodes *High 4:4:4
  Predictive*, which browsers (and many players and phones) refuse. Converting to I420 first and
  capping the profile at ``high`` gives a stream every H.264 decoder plays. ``ultrafast`` uses
  no CABAC, 8x8 transform or B-frames, so x264 writes *Constrained Baseline*, a subset of High:
  the caps are a ceiling, not a promise.
- **Even width and height.** 4:2:0 stores chroma per 2x2 block and x264 refuses odd sizes. The
  caps after ``videoscale`` allow even sizes only (an int range with step 2), so an odd frame is
  scaled by one pixel to the nearest even size (the pixel aspect ratio keeps its shape), and an
  even one passes through untouched.
- **Quality, not a fixed bitrate.** x264's constant-quality mode (``pass=qual``, CRF `QUALITY`)
  spends bits where the picture needs them, so thin skeleton lines and small labels survive at
  any frame size; x264enc's default (a constant 2,048 kbit/s) starves 1080p. In this mode
  x264enc uses ``bitrate`` as the VBV ceiling only: `MAX_BITRATE_KBPS` keeps 1080p at H.264
  level 4, which every device decodes. Measured on ``skeleton_demo.mp4`` (1080p, 28 fps): CRF 21
  takes about 4.9 Mbit/s (the 2,048 kbit/s default gave 1.8).
- **Speed.** ``ultrafast``/``zerolatency``: the encoder runs on the stream's thread in live mode.
  ``python -m bench.encode`` on 2 cores shared with other work (load 4 to 9): 100 to 280
  frames/s at 640x480, 17 to 53 at 1080p, as fast as the plain RGB chain it replaced;
  ``veryfast`` saved a fifth of the bits at a third of the speed.
- **A still image** gets a lossless PNG of its one annotated frame: a one-frame MP4 is no way
  to look at a photo, and PNG keeps any size, odd ones too.
"""

from __future__ import annotations

from pathlib import Path

from media.gst import quote

QUALITY = 21
"""x264 constant rate factor (``quantizer`` with ``pass=qual``): lower is better and bigger."""
MAX_BITRATE_KBPS = 20_000
"""x264's VBV ceiling in constant-quality mode: H.264 level 4's limit (Baseline and Main), so a
1080p stream stays level 4; CRF stays far under it on real footage."""
PROFILE = "high"
"""The H.264 profile ceiling in the caps: High 4:2:0 8-bit, which every browser decodes."""
MIN_SIDE = 16
"""x264enc's smallest frame side."""
MAX_EVEN_SIDE = 2**31 - 2
EVEN_SIDE = f"(int)[{MIN_SIDE},{MAX_EVEN_SIDE},2]"
"""A caps range of even sizes: ``videoscale`` fixates an odd size to the nearest even one."""
IMAGE_SUFFIX = ".png"
VIDEO_SUFFIX = ".mp4"


def annotated_chain(path: Path) -> list[str]:
    """The gst-launch fragments from RGB frames to the file at `path`.

    A ``.png`` path gets the first frame as a PNG (a still image's), any other an H.264 MP4.
    """
    if path.suffix == IMAGE_SUFFIX:
        return ["videoconvert", "pngenc", f"filesink location={quote(str(path))}"]
    return [
        "videoconvert",
        "videoscale",
        f"video/x-raw,format=I420,width={EVEN_SIDE},height={EVEN_SIDE}",
        "x264enc speed-preset=ultrafast tune=zerolatency"
        f" pass=qual quantizer={QUALITY} bitrate={MAX_BITRATE_KBPS}",
        f"video/x-h264,profile={PROFILE}",
        "mp4mux",
        f"filesink location={quote(str(path))}",
    ]
