"""The tuning store (SQLite and PostgreSQL): jobs, the end users they trained on, adapters.

Replicas share the work through `claim`: one conditional UPDATE moves a queued job (or a
running one whose heartbeat is older than `stale_after`: its runner died) to `running`, so
exactly one runner takes it. Rows come back as plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.store.tables.tuning import tuning_adapters, tuning_jobs, tuning_subjects

J, A, S = tuning_jobs.c, tuning_adapters.c, tuning_subjects.c
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in row.items()}


def _teams(column: Any, teams: Sequence[str] | None) -> list[ColumnElement[bool]]:
    return [] if teams is None else [column.in_(list(teams))]


class TuningStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- jobs --------------------------------------------------------------------------------

    async def insert_job(self, row: dict[str, Any], end_users: Sequence[str]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(tuning_jobs).values(**row))
            if end_users:
                rows = [{"job_id": row["id"], "end_user": u} for u in sorted(set(end_users))]
                await conn.execute(insert(tuning_subjects), rows)

    async def job(self, job_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(tuning_jobs).where(J.id == job_id))).mappings()
            found = row.first()
        return _plain(found) if found is not None else None

    async def jobs(
        self, teams: Sequence[str] | None, *, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        where = _teams(J.team_id, teams) + ([J.status == status] if status else [])
        stmt = select(tuning_jobs).where(*where).order_by(J.created_at.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def update(
        self, job_id: str, values: Mapping[str, Any], *, status_in: Sequence[str] = ()
    ) -> bool:
        """Change a job; with `status_in`, only while its status is one of them."""
        where = [J.id == job_id] + ([J.status.in_(list(status_in))] if status_in else [])
        async with self._engine.begin() as conn:
            done = await conn.execute(update(tuning_jobs).where(*where).values(**values))
        return bool(done.rowcount)

    async def claim(self, now: float, stale_after: float) -> dict[str, Any] | None:
        """Take the oldest queued job, or a running one nobody has beaten for `stale_after`."""
        takeable = or_(
            J.status == "queued",
            and_(J.status == "running", J.heartbeat_at < now - stale_after),
        )
        stmt = select(J.id, J.status, J.heartbeat_at).where(takeable)
        async with self._engine.connect() as conn:
            candidates = (await conn.execute(stmt.order_by(J.created_at).limit(5))).all()
        for job_id, status, beat in candidates:
            same = [J.status == status] + (
                [J.heartbeat_at == beat] if beat is not None else [J.heartbeat_at.is_(None)]
            )
            values = {"status": "running", "heartbeat_at": now, "updated_at": now}
            async with self._engine.begin() as conn:
                done = await conn.execute(
                    update(tuning_jobs).where(J.id == job_id, *same).values(**values)
                )
            if done.rowcount:
                return await self.job(job_id)
        return None

    async def adapter_taken(self, name: str) -> bool:
        """An adapter of this name exists, or a job that will register it is still active."""
        async with self._engine.connect() as conn:
            a = await conn.execute(select(A.name).where(A.name == name))
            if a.first() is not None:
                return True
            j = await conn.execute(
                select(J.id).where(J.adapter == name, J.status.in_(ACTIVE)).limit(1)
            )
            return j.first() is not None

    # --- adapters ----------------------------------------------------------------------------

    async def insert_adapter(self, row: dict[str, Any]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(insert(tuning_adapters).values(**row))

    async def adapter(self, name: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            found = (await conn.execute(select(tuning_adapters).where(A.name == name))).mappings()
            row = found.first()
        return _plain(row) if row is not None else None

    async def adapters(self, teams: Sequence[str] | None) -> list[dict[str, Any]]:
        stmt = select(tuning_adapters).where(*_teams(A.team_id, teams)).order_by(A.name)
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def delete_adapter(self, name: str) -> bool:
        async with self._engine.begin() as conn:
            done = await conn.execute(delete(tuning_adapters).where(A.name == name))
        return bool(done.rowcount)

    # --- end users -----------------------------------------------------------------------------

    async def trained_on(self, end_user: str) -> list[dict[str, Any]]:
        """The jobs (with their adapter name and status) trained on an end user's rows."""
        stmt = (
            select(J.id, J.adapter, J.status, J.dataset_id, J.dataset_version, J.tainted_at)
            .join(tuning_subjects, S.job_id == J.id)
            .where(S.end_user == end_user)
            .order_by(J.created_at)
        )
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def taint(self, end_user: str, now: float) -> tuple[list[str], int]:
        """Mark the jobs and adapters trained on an end user's rows tainted, then forget the
        end user: the job ids, and how many adapters were marked."""
        async with self._engine.begin() as conn:
            ids = [r[0] for r in await conn.execute(select(S.job_id).where(S.end_user == end_user))]
            adapters = 0
            if ids:
                await conn.execute(
                    update(tuning_jobs)
                    .where(J.id.in_(ids))
                    .values(
                        tainted_at=now,
                        tainted_subjects=J.tainted_subjects + 1,
                        updated_at=now,
                    )
                )
                done = await conn.execute(
                    update(tuning_adapters).where(A.job_id.in_(ids)).values(tainted_at=now)
                )
                adapters = done.rowcount or 0
                await conn.execute(delete(tuning_subjects).where(S.end_user == end_user))
        return ids, adapters

    async def drop_examples(self, job_ids: Sequence[str]) -> int:
        """Empty the example rows (validation inputs and answers) of these jobs' evaluations
        and of their adapters'; how many records changed."""
        changed = 0
        async with self._engine.begin() as conn:
            for table, key in ((tuning_jobs, J.id), (tuning_adapters, A.job_id)):
                found = await conn.execute(select(key, table.c.metrics).where(key.in_(job_ids)))
                for k, metrics in found.all():
                    evaluation = (metrics or {}).get("evaluation")
                    if not isinstance(evaluation, dict) or not evaluation.get("examples"):
                        continue
                    kept = {**metrics, "evaluation": {**evaluation, "examples": []}}
                    await conn.execute(update(table).where(key == k).values(metrics=kept))
                    changed += 1
        return changed
