"""The in-process exact cache: an LRU with a TTL per entry, bounded by count and bytes.

It is the embedded default and the fake the tests use beside the real Redis. Expired entries go
lazily (on read) and first when room is needed; an end-user index makes erasure cheap.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from opsgate.cache.store import EntryMeta, PurgeFilter, StoreStats


@dataclass(slots=True)
class _Slot:
    value: bytes
    meta: EntryMeta
    expires: float


class MemoryStore:
    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 256 * 2**20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._slots)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        """`get` without the await, for callers already on the loop (and the benchmark)."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.expires <= self._clock():
            self._drop(key)
            return None
        self._slots.move_to_end(key)
        return slot.value

    async def put(self, key: str, value: bytes, meta: EntryMeta, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return
        self._drop(key)
        self._slots[key] = _Slot(value, meta, self._clock() + ttl)
        self._bytes += len(value)
        if meta.end_user:
            self._by_user.setdefault(meta.end_user, set()).add(key)
        self._make_room()

    def _make_room(self) -> None:
        if len(self._slots) <= self.max_entries and self._bytes <= self.max_bytes:
            return
        now = self._clock()
        for key in [k for k, s in self._slots.items() if s.expires <= now]:
            self._drop(key)
        while len(self._slots) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._slots)))

    def _drop(self, key: str) -> bool:
        slot = self._slots.pop(key, None)
        if slot is None:
            return False
        self._bytes -= len(slot.value)
        user = slot.meta.end_user
        if user and (keys := self._by_user.get(user)) is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[user]
        return True

    async def purge(self, match: PurgeFilter) -> list[str]:
        if match.entry is not None:
            candidates: list[str] = [match.entry]
        elif match.end_user is not None:
            candidates = list(self._by_user.get(match.end_user, ()))
        else:
            candidates = list(self._slots)
        now, wall = self._clock(), time.time()
        gone = []
        for key in candidates:
            slot = self._slots.get(key)
            if slot is None or not match.matches(key, slot.meta, wall):
                continue
            self._drop(key)
            if slot.expires > now:
                gone.append(key)
        return gone

    async def stats(self) -> StoreStats:
        return StoreStats(self.name, len(self._slots), self._bytes)

    async def aclose(self) -> None:
        self._slots.clear()
        self._by_user.clear()
        self._bytes = 0
