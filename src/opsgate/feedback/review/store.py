"""Review queues in SQL (SQLite and PostgreSQL): the queues and how they are filled; their
items' claims, reviewer actions and progress come from `ItemStore` (review/claims.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.feedback.review.claims import ItemStore, a, i
from opsgate.feedback.review.model import QueueInfo
from opsgate.feedback.review.rules import QueueCreate
from opsgate.feedback.selection import TraceFilter
from opsgate.store.dialect import dialect_of
from opsgate.store.tables.review import review_actions, review_items, review_queues

q = review_queues.c


def _queue(row: Any) -> QueueInfo:
    rule = dict(row.rule or {})
    return QueueInfo(
        row.id,
        row.name,
        row.team_id,
        row.description,
        TraceFilter.model_validate(rule.get("filter") or {}),
        float(rule.get("sample", 1.0)),
        tuple(row.reviewers or ()),
        tuple(row.metrics or ()),
        row.lease_seconds,
        row.since,
        row.filled_until,
        row.scored_until,
        row.filled_at,
        row.created_at,
        row.created_by,
        row.updated_at,
    )


class QueueStore(ItemStore):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    # --- queues ----------------------------------------------------------------------------

    async def create(
        self,
        queue_id: str,
        req: QueueCreate,
        team_id: str | None,
        since: float,
        actor: str,
        now: float,
    ) -> QueueInfo:
        values = {
            "id": queue_id,
            "name": req.name,
            "owner": team_id or "",
            "team_id": team_id,
            "description": req.description,
            "rule": {"filter": req.rule.model_dump(mode="json"), "sample": req.sample},
            "reviewers": list(req.reviewers),
            "metrics": list(req.metrics),
            "lease_seconds": req.lease_seconds,
            "since": since,
            "filled_until": since,
            "scored_until": since,
            "filled_at": None,
            "created_at": now,
            "created_by": actor,
            "updated_at": now,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(review_queues).values(values))
        except IntegrityError:
            where = f"team {team_id!r}" if team_id else "the global scope"
            raise ConflictError(
                f"a review queue named {req.name!r} already exists in {where}",
                code="queue_exists",
            ) from None
        found = await self.get(queue_id)
        assert found is not None
        return found

    async def get(self, queue_id: str) -> QueueInfo | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(review_queues).where(q.id == queue_id))).first()
        return _queue(row) if row is not None else None

    async def find(self, name: str, owners: Sequence[str] | None) -> list[QueueInfo]:
        stmt = select(review_queues).where(q.name == name)
        if owners is not None:
            stmt = stmt.where(q.owner.in_(list(owners)))
        async with self._engine.connect() as conn:
            return [_queue(row) for row in await conn.execute(stmt)]

    async def in_scope(self, owners: Sequence[str] | None) -> list[QueueInfo]:
        stmt = select(review_queues).order_by(q.name, q.id)
        if owners is not None:
            stmt = stmt.where(q.owner.in_(list(owners)))
        async with self._engine.connect() as conn:
            return [_queue(row) for row in await conn.execute(stmt)]

    async def update(self, queue_id: str, values: dict[str, Any], now: float) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(review_queues).where(q.id == queue_id).values(**values, updated_at=now)
            )

    async def delete(self, queue_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(review_actions).where(a.queue_id == queue_id))
            await conn.execute(delete(review_items).where(i.queue_id == queue_id))
            await conn.execute(delete(review_queues).where(q.id == queue_id))

    # --- filling ---------------------------------------------------------------------------

    async def add_items(self, queue_id: str, found: Sequence[tuple[str, float]], now: float) -> int:
        """Enqueue (trace id, started_at) pairs; those already in the queue are left alone."""
        added = 0
        sql = dialect_of(self._dialect)
        for start in range(0, len(found), 500):
            rows = [
                {
                    "queue_id": queue_id,
                    "trace_id": trace_id,
                    "started_at": started_at,
                    "state": "pending",
                    "enqueued_at": now,
                    "claims": 0,
                }
                for trace_id, started_at in found[start : start + 500]
            ]
            stmt = sql.insert(review_items).values(rows).on_conflict_do_nothing()
            async with self._engine.begin() as conn:
                added += (await conn.execute(stmt)).rowcount
        return added

    async def filled(self, queue_id: str, filled_until: float, scored_until: float) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(review_queues)
                .where(q.id == queue_id)
                .values(
                    filled_until=filled_until, scored_until=scored_until, filled_at=filled_until
                )
            )
