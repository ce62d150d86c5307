"""Stream-level results waiting for the end of their stream (e.g. the whole-video clip decision).

Per-frame results travel in the frame side table; a result about the whole stream has no frame,
so the element that makes it at end-of-stream posts it here, and the publishing element, which
sees the same end-of-stream afterwards (events are serialised), takes it.
"""

from __future__ import annotations

import threading
from typing import Any

_pending: dict[str, list[Any]] = {}
_lock = threading.Lock()


def post(stream: str, result: Any) -> None:
    """Leave `result` for the end of `stream`."""
    with _lock:
        _pending.setdefault(stream, []).append(result)


def take(stream: str) -> list[Any]:
    """Everything posted for `stream`, in order; the board forgets it."""
    with _lock:
        return _pending.pop(stream, [])
