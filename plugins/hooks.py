"""What our elements report to whoever runs them (the pipeline's metrics), as plain callbacks.

Elements must not import the pipeline (it sits a floor above); the runner hands its callbacks to
the elements in its `plugins.context.ProcessContext` instead. The defaults do nothing, so elements
started by `gst-launch-1.0` need no set-up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _ignore(*_: object) -> None:
    """The default callback: report nothing."""


@dataclass(frozen=True)
class Hooks:
    """Callbacks from the elements.

    Attributes:
        frame_in: (stream) when a frame enters the stream's chain (numbered by `tpsstamp`).
        frame_done: (stream, end-to-end latency in seconds) once a frame's event is published.
        frame_dropped: (stream) when a live stream's frame is dropped before the parser.
        event_sent: (stream, event type, accepted) after every publish attempt.
        clip_decided: (stream, action label) after every clip decision.
        stage_time: (stage name, seconds) after every stage call.
    """

    frame_in: Callable[[str], None] = _ignore
    frame_done: Callable[[str, float], None] = _ignore
    frame_dropped: Callable[[str], None] = _ignore
    event_sent: Callable[[str, str, bool], None] = _ignore
    clip_decided: Callable[[str, str], None] = _ignore
    stage_time: Callable[[str, float], None] = _ignore
