"""The in-process key cache: key hash → what the key is, so the hot path skips the database.

Entries live `ttl` seconds (a bound on staleness if every invalidation were lost); unknown
hashes are remembered for a shorter `negative_ttl`, in a separate, smaller map so a flood of
made-up keys cannot push real keys out. `clear()` starts a new *generation*: a database read
that began before an invalidation is not stored after it, so a revoke can never be undone by a
slow read that saw the key still active.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from opsgate.access.principal import Principal
from opsgate.access.records import KeyRecord


@dataclass(frozen=True, slots=True)
class Entry:
    key: KeyRecord | None
    """None: no key has this hash."""
    principal: Principal | None
    until: float


class KeyCache:
    def __init__(
        self,
        *,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_entries: int = 100_000,
        max_negative: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._max = max_entries
        self._max_negative = max_negative
        self._clock = clock
        self._known: dict[str, Entry] = {}
        self._unknown: dict[str, Entry] = {}
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)

    def get(self, key_hash: str) -> Entry | None:
        entry = self._known.get(key_hash) or self._unknown.get(key_hash)
        if entry is None or entry.until <= self._clock():
            if entry is not None:
                self._drop(key_hash)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(
        self,
        key_hash: str,
        found: tuple[KeyRecord, Principal] | None,
        generation: int,
    ) -> None:
        """Remember a database answer, unless the cache was cleared since the read began."""
        if generation != self.generation:
            return
        now = self._clock()
        if found is None:
            entry = Entry(None, None, now + self.negative_ttl)
            self._insert(self._unknown, self._max_negative, key_hash, entry)
            return
        key, principal = found
        self._insert(self._known, self._max, key_hash, Entry(key, principal, now + self.ttl))

    @staticmethod
    def _insert(table: dict[str, Entry], limit: int, key_hash: str, entry: Entry) -> None:
        table.pop(key_hash, None)
        while len(table) >= limit:
            table.pop(next(iter(table)))  # the oldest insertion goes first
        table[key_hash] = entry

    def _drop(self, key_hash: str) -> None:
        self._known.pop(key_hash, None)
        self._unknown.pop(key_hash, None)

    def clear(self) -> None:
        """Forget everything (an access change happened somewhere)."""
        self.generation += 1
        self._known.clear()
        self._unknown.clear()
