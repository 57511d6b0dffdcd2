"""The cache as the gateway sees it: find an answer (exact, then semantic), store one, purge.

One `CacheService` lives per process and outlives config reloads, so a reload keeps what the
in-process cache holds; the policies it applies come with each request's `Plan`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from opsgate.cache.answer import CachedAnswer
from opsgate.cache.errors import CacheUnavailableError
from opsgate.cache.plan import Plan, SemanticQuery
from opsgate.cache.store import EntryMeta, ExactStore, PurgeFilter

HitKind = Literal["hit-exact", "hit-semantic"]
log = logging.getLogger("opsgate.cache")


class SemanticIndex(Protocol):
    """Nearest cached question in a partition; the answer itself stays in the exact store."""

    async def search(self, query: SemanticQuery) -> list[tuple[str, float]]:
        """Exact-cache keys of the nearest entries at or above the threshold, best first."""
        ...

    async def add(self, query: SemanticQuery, key: str, meta: EntryMeta, ttl: float) -> None: ...

    async def purge(self, match: PurgeFilter) -> int:
        """Drop the entries whose metadata matches; return how many went."""
        ...

    async def forget(self, keys: Sequence[str]) -> int:
        """Drop the entries pointing at these exact-cache keys; return how many went."""
        ...

    async def stats(self) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Hit:
    kind: HitKind
    key: str
    answer: CachedAnswer
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class Purged:
    exact: int
    semantic: int = 0


class CacheService:
    def __init__(
        self,
        exact: ExactStore,
        semantic: SemanticIndex | None = None,
        *,
        max_entry_bytes: int = 2 * 2**20,
    ) -> None:
        self.exact = exact
        self.semantic = semantic
        self.max_entry_bytes = max_entry_bytes

    async def find(self, plan: Plan) -> Hit | None:
        """The exact entry, else the nearest semantic one. An exact backend failure raises
        `CacheUnavailableError`; a semantic failure (an embedder down) is only a miss."""
        raw = await self.exact.get(plan.key)
        if raw is not None:
            return Hit("hit-exact", plan.key, CachedAnswer.loads(raw))
        if plan.semantic is None or self.semantic is None:
            return None
        try:
            return await self._find_similar(plan.semantic, self.semantic)
        except CacheUnavailableError as exc:
            log.warning("semantic lookup failed, treated as a miss: %s", exc)
            return None

    async def _find_similar(self, query: SemanticQuery, semantic: SemanticIndex) -> Hit | None:
        stale: list[str] = []
        hit: Hit | None = None
        for key, similarity in await semantic.search(query):
            raw = await self.exact.get(key)
            if raw is not None:
                hit = Hit("hit-semantic", key, CachedAnswer.loads(raw), similarity)
                break
            stale.append(key)  # the answer expired or was purged: drop its question too
        if stale:
            await semantic.forget(stale)
        return hit

    async def save(self, plan: Plan, body: dict[str, Any], cost_micros: int) -> bool:
        """Store an answer under the plan's key (and its question in the semantic index)."""
        answer = CachedAnswer(body, cost_micros, time.time())
        raw = answer.dumps()
        if len(raw) > self.max_entry_bytes:
            return False
        meta = replace(plan.meta, created=answer.created)
        await self.exact.put(plan.key, raw, meta, plan.access.ttl)
        if plan.semantic is not None and self.semantic is not None:
            try:
                await self.semantic.add(plan.semantic, plan.key, meta, plan.access.ttl)
            except CacheUnavailableError as exc:
                log.warning("semantic store failed (the exact entry is kept): %s", exc)
        return True

    async def purge(self, match: PurgeFilter) -> Purged:
        keys = await self.exact.purge(match)
        semantic = 0
        if self.semantic is not None:
            semantic = await self.semantic.purge(match) + await self.semantic.forget(keys)
        return Purged(len(keys), semantic)

    async def erase_end_user(self, end_user: str) -> Purged:
        """GDPR erasure: every entry made by this end user's requests, in both caches."""
        return await self.purge(PurgeFilter(end_user=end_user))

    async def stats(self) -> dict[str, Any]:
        exact = await self.exact.stats()
        out: dict[str, Any] = {
            "exact": {"backend": exact.backend, "entries": exact.entries, "bytes": exact.bytes}
        }
        if self.semantic is not None:
            out["semantic"] = await self.semantic.stats()
        return out

    async def aclose(self) -> None:
        if self.semantic is not None:
            await self.semantic.aclose()
        await self.exact.aclose()
