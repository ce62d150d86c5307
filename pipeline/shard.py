"""Sharding a site's streams over N identical workers: ``run.py run -c site.yaml --shard i/N``.

Stream ``j`` belongs to shard ``int(sha256(stream_id)) % N``. The owner depends only on the stream
id and N, never on the order of the sources or on which other streams exist, so N workers given
the same config cover every stream exactly once, adding a stream moves no other stream, and a
worker restarted with the same ``i/N`` takes back exactly the streams it had.

The kept sources carry their stream ids explicitly: ids derived from the position (``s0``,
``s1``, ...) would otherwise be renumbered once the other shards' sources are removed.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

from pipeline.config import validate
from pipeline.settings import PipelineConfig

log = logging.getLogger(__name__)

SHARD_PATTERN = re.compile(r"^(\d+)/(\d+)$")
"""``i/N`` with decimal digits only (no signs, no spaces)."""


class ShardError(Exception):
    """A ``--shard`` value is malformed or out of range."""


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"shard {self.index}/{self.count}: expected N >= 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"shard {self.index}/{self.count}: expected 0 <= i < {self.count}, got {self.index}"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/5"`` -> ``Shard(2, 5)``.

        Raises:
            ShardError: not ``i/N``, N < 1 or i >= N (the message quotes the text).
        """
        match = SHARD_PATTERN.match(text.strip())
        if match is None:
            raise ShardError(f"--shard {text!r}: expected I/N with integers 0 <= I < N, e.g. 0/3")
        try:
            return cls(int(match[1]), int(match[2]))
        except ShardError as error:
            raise ShardError(f"--shard {text!r}: {error}") from None

    def owns(self, stream_id: str) -> bool:
        """Whether `stream_id` belongs to this shard."""
        return shard_of(stream_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(stream_id: str, count: int) -> int:
    """The shard (0..count-1) that owns `stream_id`: ``int(sha256(utf-8 id)) % count``."""
    digest = hashlib.sha256(stream_id.encode()).digest()
    return int.from_bytes(digest, "big") % count


def select_sources(config: PipelineConfig, shard: Shard) -> PipelineConfig | None:
    """`config` with only the sources `shard` owns (ids made explicit); None when it owns none.

    Everything else in the config is kept as it is.
    """
    ids = config.stream_ids()
    kept = [
        {**source.model_dump(mode="python"), "id": stream_id}
        for source, stream_id in zip(config.sources, ids, strict=True)
        if shard.owns(stream_id)
    ]
    if not kept:
        log.info(
            "shard %s owns none of the %d streams of this config; nothing to run", shard, len(ids)
        )
        return None
    log.info(
        "shard %s: %d of %d streams: %s",
        shard,
        len(kept),
        len(ids),
        ", ".join(source["id"] for source in kept),
    )
    data = {**config.model_dump(mode="python"), "sources": kept}
    return validate(PipelineConfig, data, f"shard {shard} of the config")


def apply_shard(config: PipelineConfig, text: str | None) -> PipelineConfig | None:
    """The command line's ``--shard`` applied to `config` (unchanged when `text` is None).

    Raises:
        ShardError: a malformed ``--shard``.
    """
    if text is None:
        return config
    return select_sources(config, Shard.parse(text))
