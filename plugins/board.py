"""Stream-level results waiting for the end of their stream (e.g. the whole-video clip decision).

Per-frame results travel in the frame side table; a result about the whole stream has no frame,
so the element that makes it at end-of-stream posts it on the process's `Board`, and the publishing
element, which sees the same end-of-stream afterwards (events are serialised), takes it.
"""

from __future__ import annotations

import threading
from typing import Any


class Board:
    """Results posted per stream until the stream's publisher takes them (thread-safe)."""

    def __init__(self) -> None:
        self._pending: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def post(self, stream: str, result: Any) -> None:
        """Leave `result` for the end of `stream`."""
        with self._lock:
            self._pending.setdefault(stream, []).append(result)

    def take(self, stream: str) -> list[Any]:
        """Everything posted for `stream`, in order; the board forgets it."""
        with self._lock:
            return self._pending.pop(stream, [])
