"""Changes to datasets in SQL: creating and deleting a dataset, and the versioned change
(`begin`, `add_rows`, `remove_rows`, then `commit` or `abandon`).

A change takes the dataset's lease (`begin`), writes its rows under the next version number in
as many short transactions as it needs (the trace writer keeps writing meanwhile), and becomes
visible in one transaction at `commit`. Changes to one dataset are serialised by the lease; a
change whose process died is taken over when its lease runs out, and its leftovers are removed
first.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.feedback.datasets.model import Change, DatasetInfo, NewRow, new_id
from opsgate.feedback.datasets.stored import BATCH, in_version, r
from opsgate.store.tables.datasets import dataset_rows, dataset_versions, datasets

LEASE_SECONDS = 120.0
"""How long a change may go without writing before another may take the dataset over."""

d = datasets.c


class DatasetBusyError(ConflictError):
    default_code = "dataset_busy"


class DatasetChanges:
    """The writes of `DatasetStore` (which adds the reads)."""

    _engine: AsyncEngine

    async def create(
        self, name: str, team_id: str | None, description: str | None, actor: str, now: float
    ) -> tuple[DatasetInfo, Change]:
        """A new dataset at version 0, with the lease for its first change (version 1)."""
        change = Change(new_id("ds"), 1, secrets.token_hex(8))
        values = {
            "id": change.dataset_id,
            "name": name,
            "owner": team_id or "",
            "team_id": team_id,
            "description": description,
            "version": 0,
            "pending": 1,
            "pending_until": now + LEASE_SECONDS,
            "pending_by": change.token,
            "created_at": now,
            "created_by": actor,
            "updated_at": now,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(datasets).values(values))
        except IntegrityError:
            where = f"team {team_id!r}" if team_id else "the global scope"
            raise ConflictError(
                f"a dataset named {name!r} already exists in {where}", code="dataset_exists"
            ) from None
        info = DatasetInfo(change.dataset_id, name, team_id, description, 0, now, actor, now)
        return info, change

    async def delete(self, dataset_id: str) -> bool:
        async with self._engine.begin() as conn:
            await conn.execute(delete(dataset_rows).where(r.dataset_id == dataset_id))
            gone = await conn.execute(delete(datasets).where(d.id == dataset_id))
        return gone.rowcount > 0

    async def begin(self, dataset_id: str, now: float) -> Change:
        """Take the dataset's lease for a change that writes version+1; 409 `dataset_busy`
        while another change holds it."""
        token = secrets.token_hex(8)
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(d.version, d.pending, d.pending_until, d.pending_by).where(
                        d.id == dataset_id
                    )
                )
            ).first()
            if row is None:
                raise ConflictError("the dataset was deleted", code="dataset_gone")
            if row.pending is not None and (row.pending_until or 0) > now:
                raise DatasetBusyError(
                    "another change to this dataset is in progress; try again when it is done"
                )
            version = row.version + 1
            taken = await conn.execute(
                update(datasets)
                .where(d.id == dataset_id, d.version == row.version, _same(d.pending_by, row))
                .values(pending=version, pending_until=now + LEASE_SECONDS, pending_by=token)
            )
            if taken.rowcount != 1:
                raise DatasetBusyError("another change to this dataset started; try again")
            # Leftovers of a change whose process died before its commit.
            await conn.execute(
                delete(dataset_rows).where(r.dataset_id == dataset_id, r.added_in >= version)
            )
            await conn.execute(
                update(dataset_rows)
                .where(r.dataset_id == dataset_id, r.removed_in >= version)
                .values(removed_in=None)
            )
        return Change(dataset_id, version, token)

    async def _hold(self, conn: AsyncConnection, change: Change, now: float) -> None:
        """Renew the lease inside a write; 409 when the change lost it."""
        held = await conn.execute(
            update(datasets)
            .where(d.id == change.dataset_id, d.pending_by == change.token)
            .values(pending_until=now + LEASE_SECONDS)
        )
        if held.rowcount != 1:
            raise DatasetBusyError(
                "this change took too long and another change took the dataset over"
            )

    async def add_rows(
        self, change: Change, rows: Sequence[NewRow], first_seq: int, now: float
    ) -> None:
        if not rows:
            return
        values = [
            {
                "id": row.id,
                "dataset_id": change.dataset_id,
                "added_in": change.version,
                "seq": first_seq + i,
                "removed_in": None,
                "source_trace_id": row.source_trace_id,
                "end_user": row.end_user,
                "model": row.model,
                "input_hash": row.input_hash,
                "has_output": row.has_output,
                "has_reference": row.has_reference,
                "scores": row.scores,
                "metadata": row.metadata,
                "body": row.body,
                "created_at": row.created_at,
            }
            for i, row in enumerate(rows)
        ]
        async with self._engine.begin() as conn:
            await self._hold(conn, change, now)
            await conn.execute(insert(dataset_rows), values)

    async def remove_rows(
        self,
        change: Change,
        now: float,
        *,
        row_ids: Sequence[str] = (),
        trace_ids: Sequence[str] = (),
    ) -> int:
        """Take rows out of the new version (they stay in the older ones)."""
        removed = 0
        async with self._engine.begin() as conn:
            await self._hold(conn, change, now)
            for column, keys in ((r.id, row_ids), (r.source_trace_id, trace_ids)):
                for start in range(0, len(keys), BATCH):
                    gone = await conn.execute(
                        update(dataset_rows)
                        .where(
                            in_version(change.dataset_id, change.version - 1),
                            column.in_(list(keys[start : start + BATCH])),
                        )
                        .values(removed_in=change.version)
                    )
                    removed += gone.rowcount
        return removed

    async def commit(
        self,
        change: Change,
        kind: str,
        detail: dict[str, Any],
        added: int,
        removed: int,
        actor: str,
        now: float,
    ) -> None:
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(datasets)
                .where(d.id == change.dataset_id, d.pending_by == change.token)
                .values(
                    version=change.version,
                    pending=None,
                    pending_until=None,
                    pending_by=None,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:
                raise DatasetBusyError(
                    "this change took too long and another change took the dataset over"
                )
            await conn.execute(
                insert(dataset_versions).values(
                    dataset_id=change.dataset_id,
                    version=change.version,
                    created_at=now,
                    created_by=actor,
                    change=kind,
                    detail=detail,
                    added=added,
                    removed=removed,
                )
            )

    async def abandon(self, change: Change) -> None:
        """Give up a change: its rows go and its lease is released."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(dataset_rows).where(
                    r.dataset_id == change.dataset_id, r.added_in == change.version
                )
            )
            await conn.execute(
                update(dataset_rows)
                .where(r.dataset_id == change.dataset_id, r.removed_in == change.version)
                .values(removed_in=None)
            )
            await conn.execute(
                update(datasets)
                .where(d.id == change.dataset_id, d.pending_by == change.token)
                .values(pending=None, pending_until=None, pending_by=None)
            )


def _same(column: Any, row: Any) -> Any:
    return column.is_(None) if row.pending_by is None else column == row.pending_by
