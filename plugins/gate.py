"""Whose turn it is to put a frame into the parser when the streams of a process share its places.

The live ``tpsstamp`` admits frames through the process's `FairGate`
(`plugins.context.ProcessContext.gate`), shared by every stream like the side table.
"""

from __future__ import annotations

import math
import threading
import time

ACTIVE_S = 1.0
"""A stream that offered a frame this recently takes its turn at the gate."""


class FairGate:
    """Gives free places to the streams in turn: the stream served longest ago goes first.

    Admitting whichever frame comes first after a place frees up starves a stream whose frames
    happen to arrive just after the others' (paced sources keep their phase). Here a free place
    waits for the active stream (one that offered a frame in the last `ACTIVE_S`) that was admitted
    longest ago; frames of other streams are dropped meanwhile, at most one frame interval.
    """

    def __init__(self) -> None:
        self._offered: dict[str, float] = {}
        self._admitted: dict[str, float] = {}
        self._lock = threading.Lock()

    def admit(self, stream: str, room: bool) -> bool:
        """Whether a frame of `stream` goes in now; `room`: a place is free."""
        now = time.monotonic()
        with self._lock:
            self._offered[stream] = now
            if not room:
                return False
            never = -math.inf
            active = [name for name, at in self._offered.items() if now - at <= ACTIVE_S]
            if self._admitted.get(stream, never) > min(
                self._admitted.get(n, never) for n in active
            ):
                return False
            self._admitted[stream] = now
            return True
