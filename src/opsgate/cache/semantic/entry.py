"""One semantic cache entry: what the index id points at (shared by the store and its snapshots)."""

from __future__ import annotations

from dataclasses import dataclass

from opsgate.cache.store import EntryMeta


@dataclass(slots=True)
class SemanticEntry:
    key: str
    partition: str
    meta: EntryMeta
    expires: float
    """Epoch seconds."""
