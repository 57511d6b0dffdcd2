"""The exact cache's storage interface, and what every backend keeps beside an answer.

A backend stores opaque bytes under a key with a TTL, plus `EntryMeta` so entries can be purged
by namespace, model, key, end user or age without reading the answers. `MemoryStore` is the
in-process backend and the fake for tests; `RedisStore` is shared by replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EntryMeta:
    namespace: str
    model: str
    key_id: str | None = None
    end_user: str | None = None
    """The end user whose request made the entry; erasure removes it."""
    created: float = 0.0
    """Epoch seconds."""


@dataclass(frozen=True, slots=True)
class PurgeFilter:
    """Entries matching every given field; `PurgeFilter()` matches all entries."""

    namespace: str | None = None
    model: str | None = None
    key_id: str | None = None
    end_user: str | None = None
    older_than: float | None = None
    """Seconds: entries created longer ago than this."""
    entry: str | None = None
    """One entry, by its cache key."""

    @property
    def everything(self) -> bool:
        return all(
            v is None
            for v in (
                self.namespace,
                self.model,
                self.key_id,
                self.end_user,
                self.older_than,
                self.entry,
            )
        )

    def matches(self, key: str, meta: EntryMeta, now: float) -> bool:
        return (
            (self.entry is None or key == self.entry)
            and (self.namespace is None or meta.namespace == self.namespace)
            and (self.model is None or meta.model == self.model)
            and (self.key_id is None or meta.key_id == self.key_id)
            and (self.end_user is None or meta.end_user == self.end_user)
            and (self.older_than is None or meta.created < now - self.older_than)
        )


@dataclass(frozen=True, slots=True)
class StoreStats:
    backend: str
    entries: int
    bytes: int | None = None


class ExactStore(Protocol):
    """Bytes under a key, with a TTL and purgeable metadata."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""
        ...

    async def put(self, key: str, value: bytes, meta: EntryMeta, ttl: float) -> None:
        """Store (or replace) `value` for `ttl` seconds."""
        ...

    async def purge(self, match: PurgeFilter) -> list[str]:
        """Delete the matching entries; return their keys."""
        ...

    async def stats(self) -> StoreStats: ...

    async def aclose(self) -> None: ...
