"""What the elements of one process share, wired explicitly: one `ProcessContext` per run.

The side table, the network pool, the hooks, the board of end-of-stream results, the event sinks
and the live gate are shared by every stream of a process; they are the fields of one context
rather than module globals. An element looks the context up once, when it starts
(`current_context`), and hands it to its stage; the runner builds its own (batching, metrics hooks)
and installs it for its run (`use_context`). Elements started by `gst-launch-1.0` get a default
context, made on first use, whose hooks report nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plugins.board import Board
from plugins.frames import FrameTable
from plugins.gate import FairGate
from plugins.hooks import Hooks
from plugins.sinks import EventSinks

if TYPE_CHECKING:
    from plugins.pool import NetworkPool


def _default_pool() -> NetworkPool:
    """A pool with the default batching, imported here so that importing the elements (which
    import this module) loads no model code."""
    from plugins.pool import NetworkPool

    return NetworkPool()


@dataclass(frozen=True)
class ProcessContext:
    """Everything the elements of a process share.

    Attributes:
        pool: the loaded networks, each behind its micro-batcher.
        hooks: what the elements report to whoever runs them (metrics).
        table: the per-frame side table.
        board: results of a whole stream, from the clip element to the publisher.
        gate: whose turn it is at the live stamp elements.
        sinks: the event publishers by endpoint; they report to `hooks`.
    """

    pool: NetworkPool = field(default_factory=_default_pool)
    hooks: Hooks = field(default_factory=Hooks)
    table: FrameTable = field(default_factory=FrameTable)
    board: Board = field(default_factory=Board)
    gate: FairGate = field(default_factory=FairGate)
    sinks: EventSinks = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sinks", EventSinks(self.hooks))


_current: ProcessContext | None = None
_lock = threading.Lock()


def current_context() -> ProcessContext:
    """The context in force: the one installed by `use_context`, else the process's default."""
    global _current
    with _lock:
        if _current is None:
            _current = ProcessContext()
        return _current


@contextmanager
def use_context(context: ProcessContext) -> Iterator[ProcessContext]:
    """Make `context` the one in force (for every thread) until the block ends, then restore the
    previous one."""
    global _current
    with _lock:
        previous, _current = _current, context
    try:
        yield context
    finally:
        with _lock:
            _current = previous
