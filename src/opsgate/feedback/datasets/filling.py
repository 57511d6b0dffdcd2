"""Filling a dataset change with rows from its sources: traffic (trace filters, a review
queue, trace ids; rows stay inside the dataset's team), inline rows, and JSONL uploads.

`DatasetService` takes the change's lease and commits or abandons it; `ChangeFiller` writes the
rows in between, a chunk at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.principal import Principal
from opsgate.config.feedback import MetricConfig
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.feedback.datasets import importer, sources
from opsgate.feedback.datasets.model import Change, DatasetInfo
from opsgate.feedback.datasets.requests import RowSources, change_detail, in_team
from opsgate.feedback.datasets.store import DatasetStore
from opsgate.feedback.scores import ScoreStore
from opsgate.feedback.selection import check_conditions
from opsgate.store.crypto import BodyCipher

QueueLookup = Callable[[Principal, str], Awaitable[tuple[str, str | None]]]
"""(queue id, its team) of a review queue `principal` may see (404 otherwise)."""


@dataclass(slots=True)
class ChangeResult:
    dataset: DatasetInfo
    version: int
    added: int = 0
    removed: int = 0
    matched: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    truncated: bool = False


class ChangeFiller:
    def __init__(
        self,
        engine: AsyncEngine,
        store: DatasetStore,
        scores: ScoreStore,
        *,
        cipher: Callable[[], BodyCipher | None],
        metrics: Callable[[], Mapping[str, MetricConfig]],
        stores_bodies: Callable[[], bool],
        queues: QueueLookup | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._engine = engine
        self._scores = scores
        self._cipher = cipher
        self._metrics = metrics
        self._stores_bodies = stores_bodies
        self.queues = queues
        self._clock = clock

    async def import_batch(
        self, change: Change, batch: list[tuple[int, bytes]], cipher: BodyCipher | None, seq: int
    ) -> int:
        if not batch:
            return 0
        if seq + len(batch) > importer.MAX_IMPORT_ROWS:
            raise BadRequestError(
                f"an upload may hold at most {importer.MAX_IMPORT_ROWS} rows",
                code="too_many_rows",
            )
        now = self._clock()

        def parse() -> list[Any]:
            parsed = [importer.parse_line(raw, number) for number, raw in batch]
            return importer.to_rows(parsed, cipher, now)

        rows = await asyncio.to_thread(parse)
        await self.store.add_rows(change, rows, seq, now)
        return len(rows)

    def check_sources(self, req: RowSources) -> None:
        metrics = self._metrics()
        for i, flt in enumerate(req.from_traces or ()):
            check_conditions(flt, metrics, f"from_traces[{i}]")
        if req.uses_traffic and not self._stores_bodies():
            raise ConflictError(
                "Datasets are built from the prompts and answers stored with traces, and "
                "traces.store_bodies is off: set it to `full` or `masked` (traces recorded "
                "before then have no bodies). Rows can still be uploaded as JSONL.",
                code="bodies_not_stored",
            )

    async def apply(
        self,
        who: Principal,
        info: DatasetInfo,
        change: Change,
        req: RowSources,
        actor: str,
        kind: str,
        *,
        always: bool = False,
    ) -> ChangeResult:
        result = ChangeResult(info, change.version)
        try:
            if req.uses_traffic:
                await self._from_traffic(who, info, change, req, result)
            if req.rows:
                await self._inline(change, req.rows, result)
            if not result.added and not always:
                await self.store.abandon(change)
                result.version = info.version
                return result
            detail = change_detail(req, result.matched, result.truncated)
            await self.store.commit(change, kind, detail, result.added, 0, actor, self._clock())
        except BaseException:
            await asyncio.shield(self.store.abandon(change))
            raise
        result.dataset = await self.current(info)
        return result

    async def _from_traffic(
        self,
        who: Principal,
        info: DatasetInfo,
        change: Change,
        req: RowSources,
        result: ChangeResult,
    ) -> None:
        now = self._clock()
        parts: list[sources.Picked] = []
        if req.from_traces:
            scoped = [in_team(flt, info.team_id, i) for i, flt in enumerate(req.from_traces)]
            parts.append(await sources.pick_traces(self._engine, scoped, req.limit, now))
        if req.from_queue:
            parts.append(await self._pick_queue(who, info, req.from_queue, req.limit))
        if req.trace_ids:
            parts.append(await sources.pick_ids(self._engine, req.trace_ids, info.team_id))
        picked = sources.merge(parts)
        result.matched = picked.matched
        present = await self.store.live_traces(info.id, info.version, picked.trace_ids)
        ids = [t for t in picked.trace_ids if t not in present]
        result.truncated = len(ids) > req.limit
        ids = ids[: req.limit]
        result.skipped = {"without_bodies": picked.without_bodies, "already_in": len(present)}
        if picked.without_bodies and not ids and not present:
            raise ConflictError(
                f"{picked.without_bodies} traces matched, but none was stored with its prompt "
                "and answer (traces.store_bodies was off when they were recorded)",
                code="bodies_not_stored",
            )
        for start in range(0, len(ids), sources.CHUNK):
            built = await sources.build_rows(
                self._engine, self._scores, self._cipher, ids[start : start + sources.CHUNK]
            )
            await self.store.add_rows(change, built.rows, result.added, self._clock())
            result.added += len(built.rows)
            result.skipped["not_chat"] = result.skipped.get("not_chat", 0) + built.not_chat
            skipped = result.skipped.get("undecryptable", 0) + built.undecryptable
            result.skipped["undecryptable"] = skipped

    async def _pick_queue(
        self, who: Principal, info: DatasetInfo, ref: str, limit: int
    ) -> sources.Picked:
        if self.queues is None:
            raise BadRequestError("review queues are not available", code="no_review_queues")
        queue_id, team = await self.queues(who, ref)
        if info.team_id is not None and team != info.team_id:
            raise NotFoundError(f"no review queue {ref!r}", code="queue_not_found")
        return await sources.pick_queue(self._engine, queue_id, limit)

    async def _inline(
        self, change: Change, rows: list[dict[str, Any]], result: ChangeResult
    ) -> None:
        cipher, now = self._cipher(), self._clock()

        def parse() -> list[Any]:
            parsed = [importer.parse_object(row, f"rows[{i}]") for i, row in enumerate(rows)]
            return importer.to_rows(parsed, cipher, now)

        built = await asyncio.to_thread(parse)
        await self.store.add_rows(change, built, result.added, now)
        result.added += len(built)

    async def current(self, info: DatasetInfo) -> DatasetInfo:
        return await self.store.get(info.id) or info
