"""The annotated video's encoder: H.264 that browsers and common players play, in an MP4 file.

    tpspublish -> videocrop (to even width/height) -> videoconvert -> I420 -> x264enc
        -> video/x-h264,profile=high -> mp4mux -> filesink

Choices:

- **4:2:0 chroma.** The overlay hands out packed RGB; fed that (or Y444) directly, x264 encodes
  *High 4:4:4 Predictive*, which browsers (and many players and phones) refuse. Converting to
  I420 first and capping the profile at ``high`` in the caps gives a stream every H.264 decoder
  plays. ``ultrafast`` uses no CABAC, 8x8 transform or B-frames, so x264 actually writes
  *Constrained Baseline*, a subset of High: the caps are a ceiling, not a promise.
- **Even width and height.** 4:2:0 stores chroma per 2x2 block and x264 rejects odd sizes, so a
  ``videocrop`` drops the last column and/or row of an odd-sized frame; its crop is set from each
  CAPS event, since the frame size is only known once the source has negotiated.
- **Quality, not a fixed bitrate.** x264's constant-quality mode (``pass=qual``, CRF
  `QUALITY`) spends bits where the picture needs them, so detail (thin skeleton lines, small part
  labels) survives at any frame size. GStreamer's x264enc also uses ``bitrate`` as the VBV
  ceiling in that mode, and its default (2048 kbit/s) starved 1080p; the ceiling is set per
  stream from the negotiated size and rate, `MAX_BITS_PER_PIXEL` bits per pixel per frame
  (about 8.7 Mbit/s at 1080p28), never under `MIN_BITRATE_KBPS` (which 320x240 at 25 fps gets).
  Measured on ``skeleton_demo.mp4`` (1080p, 28 fps): CRF 21 takes about 4.7 Mbit/s, 0.08 bits
  per pixel, under the ceiling.
- **Speed.** ``ultrafast``/``zerolatency`` as before: the encoder runs on the stream's own
  thread in live mode, and CRF makes up for the weaker compression with bits, not with blur.
"""

from __future__ import annotations

from fractions import Fraction

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from pipeline.gst import quote  # noqa: E402

QUALITY = 21
"""x264 constant rate factor (``quantizer`` with ``pass=qual``): lower is better and bigger."""
MAX_BITS_PER_PIXEL = 0.15
"""The bitrate ceiling (VBV) per pixel per frame."""
MIN_BITRATE_KBPS = 500
"""The ceiling never drops under this, so tiny or slow streams keep their detail too."""
FALLBACK_FPS = 30.0
"""The rate assumed for the ceiling when the caps give none (variable-rate sources)."""
PROFILE = "high"
"""The H.264 profile ceiling in the caps: High 4:2:0 8-bit, which every browser decodes."""
EVEN_SUFFIX = "even"
ENCODER_SUFFIX = "h264"


def bitrate_kbps(width: int, height: int, fps: float | None) -> int:
    """The encoder's bitrate ceiling in kbit/s for frames of `width` x `height` at `fps`."""
    rate = fps if fps and fps > 0 else FALLBACK_FPS
    return max(MIN_BITRATE_KBPS, round(MAX_BITS_PER_PIXEL * width * height * rate / 1000))


def mp4_chain(stream: str, path: str) -> list[str]:
    """The gst-launch fragments from RGB frames to the MP4 file at `path`.

    Call `configure_encoder` on the parsed bin: it sets the crop and the bitrate ceiling from the
    caps that reach the chain.
    """
    return [
        f"videocrop name={stream}_{EVEN_SUFFIX}",
        "videoconvert",
        "video/x-raw,format=I420",
        f"x264enc name={stream}_{ENCODER_SUFFIX} speed-preset=ultrafast tune=zerolatency"
        f" pass=qual quantizer={QUALITY}",
        f"video/x-h264,profile={PROFILE}",
        "mp4mux",
        f"filesink location={quote(path)}",
    ]


def _fps(structure: Gst.Structure) -> float | None:
    found, numerator, denominator = structure.get_fraction("framerate")
    if not found or numerator <= 0 or denominator <= 0:
        return None
    return float(Fraction(numerator, denominator))


def configure_encoder(container: Gst.Bin, stream: str) -> None:
    """Make the chain of `mp4_chain` in `container` follow each frame size it is given."""
    crop = container.get_by_name(f"{stream}_{EVEN_SUFFIX}")
    encoder = container.get_by_name(f"{stream}_{ENCODER_SUFFIX}")
    if crop is None or encoder is None:
        raise ValueError(f"stream {stream!r}: no MP4 chain to configure")

    def on_event(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        event = info.get_event()
        if event is not None and event.type == Gst.EventType.CAPS:
            structure = event.parse_caps().get_structure(0)
            found_w, width = structure.get_int("width")
            found_h, height = structure.get_int("height")
            if found_w and found_h:
                # Set before the caps pass videocrop and reach x264enc, so both start right.
                crop.set_property("right", width % 2)
                crop.set_property("bottom", height % 2)
                rate = bitrate_kbps(width - width % 2, height - height % 2, _fps(structure))
                encoder.set_property("bitrate", rate)
        return Gst.PadProbeReturn.OK

    crop.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
