"""Synthetic Kinetics-TPS data: articulated people doing actions, with exact boxes and states.

Nothing here touches GStreamer or other global state at import; `tps.synth.encode` initialises
GStreamer on first use.
"""

from tps.synth.errors import EncodeError, SynthError, SynthParamError
from tps.synth.motions import SYNTH_ACTIONS
from tps.synth.video import HumanAnnotation, PartAnnotation, PersonSpec, SynthVideo

__all__ = [
    "SYNTH_ACTIONS",
    "EncodeError",
    "HumanAnnotation",
    "PartAnnotation",
    "PersonSpec",
    "SynthError",
    "SynthParamError",
    "SynthVideo",
]
