"""Review items in SQL: claims, reviewer actions (label, skip, undo) and a queue's progress.

The claim is the part that must hold across processes: a candidate is picked by a plain read,
then taken with one conditional UPDATE (`state = 'pending'` and nobody holding a live lease);
the database lets exactly one of two racing claimers change the row (PostgreSQL re-checks the
condition after the row lock, SQLite has one writer), and the loser moves to the next
candidate. A lease that runs out frees the item for the next claimer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.feedback.review.model import Action, Item, Progress
from opsgate.store.tables.review import review_actions, review_items

i = review_items.c
a = review_actions.c
CANDIDATES = 8
"""Items looked at per claim attempt: racing claimers spread over them instead of queueing."""
ATTEMPTS = 20


def _item(row: Any) -> Item:
    return Item(
        row.queue_id,
        row.trace_id,
        row.started_at,
        row.state,
        row.assigned_to,
        row.lease_until,
        row.done_by,
        row.done_at,
        row.enqueued_at,
    )


def free(now: float) -> Any:
    """A pending item nobody holds a live lease on."""
    return and_(i.state == "pending", or_(i.assigned_to.is_(None), i.lease_until < now))


class ItemStore:
    """The item side of `QueueStore` (which adds the queues themselves)."""

    _engine: AsyncEngine

    # --- claims ----------------------------------------------------------------------------

    async def held(self, queue_id: str, reviewer: str, now: float) -> Item | None:
        """The pending item `reviewer` holds a live lease on, if any."""
        stmt = (
            select(review_items)
            .where(
                i.queue_id == queue_id,
                i.state == "pending",
                i.assigned_to == reviewer,
                i.lease_until >= now,
            )
            .order_by(i.started_at, i.trace_id)
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _item(row) if row is not None else None

    async def claim(self, queue_id: str, reviewer: str, now: float, lease: float) -> Item | None:
        """Take the oldest free item `reviewer` has not skipped; None when there is none."""
        skipped = exists(
            select(a.id).where(
                a.queue_id == queue_id,
                a.trace_id == i.trace_id,
                a.reviewer == reviewer,
                a.action == "skip",
            )
        )
        pick = (
            select(i.trace_id)
            .where(i.queue_id == queue_id, free(now), ~skipped)
            .order_by(i.started_at, i.trace_id)
            .limit(CANDIDATES)
        )
        for _ in range(ATTEMPTS):
            async with self._engine.connect() as conn:
                candidates = [row[0] for row in await conn.execute(pick)]
            if not candidates:
                return None
            for trace_id in candidates:
                async with self._engine.begin() as conn:
                    taken = await self._take(conn, queue_id, trace_id, reviewer, now, lease)
                if taken:
                    return await self.item(queue_id, trace_id)
        return None

    @staticmethod
    async def _take(
        conn: AsyncConnection,
        queue_id: str,
        trace_id: str,
        reviewer: str,
        now: float,
        lease: float,
        *,
        also_mine: bool = False,
    ) -> bool:
        condition = free(now)
        if also_mine:
            condition = or_(condition, and_(i.state == "pending", i.assigned_to == reviewer))
        result = await conn.execute(
            update(review_items)
            .where(i.queue_id == queue_id, i.trace_id == trace_id, condition)
            .values(assigned_to=reviewer, lease_until=now + lease, claims=i.claims + 1)
        )
        return result.rowcount == 1

    async def item(self, queue_id: str, trace_id: str) -> Item | None:
        stmt = select(review_items).where(i.queue_id == queue_id, i.trace_id == trace_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _item(row) if row is not None else None

    async def items(
        self, queue_id: str, state: str | None, after: tuple[float, str] | None, limit: int
    ) -> list[Item]:
        stmt = select(review_items).where(i.queue_id == queue_id)
        if state is not None:
            stmt = stmt.where(i.state == state)
        if after is not None:
            stmt = stmt.where(
                or_(
                    i.started_at > after[0],
                    and_(i.started_at == after[0], i.trace_id > after[1]),
                )
            )
        stmt = stmt.order_by(i.started_at, i.trace_id).limit(limit)
        async with self._engine.connect() as conn:
            return [_item(row) for row in await conn.execute(stmt)]

    # --- actions ---------------------------------------------------------------------------

    async def finish(self, queue_id: str, trace_id: str, reviewer: str, now: float) -> int | None:
        """Mark an item labelled by `reviewer` (theirs, or free) and record the action; its id,
        or None when the item is done already or another reviewer holds it."""
        mine_or_free = or_(free(now), and_(i.state == "pending", i.assigned_to == reviewer))
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(review_items)
                .where(i.queue_id == queue_id, i.trace_id == trace_id, mine_or_free)
                .values(
                    state="done", done_by=reviewer, done_at=now, assigned_to=None, lease_until=None
                )
            )
            if done.rowcount != 1:
                return None
            return await self._act(conn, queue_id, trace_id, reviewer, "label", now)

    async def scored(self, action_id: int, score_ids: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(review_actions).where(a.id == action_id).values(score_ids=list(score_ids))
            )

    async def skip(self, queue_id: str, trace_id: str, reviewer: str, now: float) -> bool:
        """Put an item back for others and never offer it to `reviewer` again (until undone)."""
        mine_or_free = or_(free(now), and_(i.state == "pending", i.assigned_to == reviewer))
        async with self._engine.begin() as conn:
            released = await conn.execute(
                update(review_items)
                .where(i.queue_id == queue_id, i.trace_id == trace_id, mine_or_free)
                .values(assigned_to=None, lease_until=None)
            )
            if released.rowcount != 1:
                return False
            await self._act(conn, queue_id, trace_id, reviewer, "skip", now)
        return True

    async def _act(
        self,
        conn: AsyncConnection,
        queue_id: str,
        trace_id: str,
        reviewer: str,
        action: str,
        now: float,
    ) -> int:
        result = await conn.execute(
            insert(review_actions).values(
                queue_id=queue_id,
                trace_id=trace_id,
                reviewer=reviewer,
                action=action,
                at=now,
                score_ids=[],
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def last_action(self, queue_id: str, reviewer: str) -> Action | None:
        stmt = (
            select(review_actions)
            .where(a.queue_id == queue_id, a.reviewer == reviewer)
            .order_by(a.id.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        return Action(row.id, row.trace_id, row.action, tuple(row.score_ids or ()))

    async def undo(
        self, queue_id: str, action: Action, reviewer: str, now: float, lease: float
    ) -> bool:
        """Withdraw `action` and give its item back to `reviewer` (True) when it is free or
        theirs; a skipped item another reviewer holds now stays with them (False)."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(review_actions).where(a.id == action.id))
            if action.action == "label":
                reopened = await conn.execute(
                    update(review_items)
                    .where(
                        i.queue_id == queue_id,
                        i.trace_id == action.trace_id,
                        i.state == "done",
                        i.done_by == reviewer,
                    )
                    .values(
                        state="pending",
                        done_by=None,
                        done_at=None,
                        assigned_to=reviewer,
                        lease_until=now + lease,
                    )
                )
                return reopened.rowcount == 1
            return await self._take(
                conn, queue_id, action.trace_id, reviewer, now, lease, also_mine=True
            )

    async def progress(self, queue_id: str, now: float) -> Progress:
        async with self._engine.connect() as conn:
            by_state: dict[str, int] = dict(
                (
                    await conn.execute(
                        select(i.state, func.count())
                        .where(i.queue_id == queue_id)
                        .group_by(i.state)
                    )
                ).all()
            )
            held = (
                await conn.execute(
                    select(func.count()).where(
                        i.queue_id == queue_id,
                        i.state == "pending",
                        i.assigned_to.is_not(None),
                        i.lease_until >= now,
                    )
                )
            ).scalar_one()
            labelled = (
                await conn.execute(
                    select(i.done_by, func.count())
                    .where(i.queue_id == queue_id, i.state == "done")
                    .group_by(i.done_by)
                )
            ).all()
            skipped = (
                await conn.execute(
                    select(a.reviewer, func.count(func.distinct(a.trace_id)))
                    .where(a.queue_id == queue_id, a.action == "skip")
                    .group_by(a.reviewer)
                )
            ).all()
        done, pending = int(by_state.get("done", 0)), int(by_state.get("pending", 0))
        return Progress(
            total=done + pending,
            done=done,
            pending=pending,
            in_progress=int(held),
            labelled_by={str(who): int(n) for who, n in labelled},
            skipped_by={str(who): int(n) for who, n in skipped},
        )
