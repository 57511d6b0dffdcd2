"""Drift's SQL store (SQLite and PostgreSQL): samples, API monitors, results, proposals.

Windows are read sampled and bounded: at most `limit` rows per side, picked by trace id, which
is 32 random hex digits, so "the first `limit` ids in the window" is a uniform random sample
whatever the window's size, and the gateway's memory stays bounded.

Replicas share the scheduling through `claim`: a result row in state `running`, inserted only
when the monitor has no result in the last `every` seconds, by one statement (SQLite: its write
lock; PostgreSQL: under a transaction-scoped advisory lock on the monitor's name), so exactly
one replica evaluates a monitor per period; `finish` fills the row in. Reads skip claims in
flight (and the claim of a replica that stopped mid-evaluation, which stays `running`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, cast, delete, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.config.drift import DriftScope
from opsgate.store.dialect import dialect_of
from opsgate.store.tables.drift import (
    drift_monitors,
    drift_proposals,
    drift_results,
    drift_samples,
)
from opsgate.store.tables.feedback import scores
from opsgate.store.tables.traces import traces

BATCH = 500
RUNNING = "running"
"""The state of a claimed result while its replica evaluates it (never shown)."""
_PG_LOCK_CLASS = 0x6F706472  # "opdr": the advisory lock space of drift claims


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float


def _plain(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as a dict with plain `str` keys (SQLAlchemy's are a str subclass, which orjson
    refuses as keys)."""
    return {str(k): v for k, v in row.items()}


def _scope(table: Table, scope: DriftScope, *, model: str = "model") -> list[ColumnElement[bool]]:
    c = table.c
    where: list[ColumnElement[bool]] = []
    if scope.model:
        where.append(c[model] == scope.model)
    if scope.key:
        where.append(c.key_id == scope.key)
    if scope.team:
        where.append(c.team_id == scope.team)
    if scope.prompt:
        if "prompt_name" in c:
            where.append(c.prompt_name == scope.prompt)
        else:  # scores: through their traces
            named = select(traces.c.trace_id).where(traces.c.prompt_name == scope.prompt)
            where.append(c.trace_id.in_(named))
    return where


class DriftStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- samples ---------------------------------------------------------------------------

    async def add_samples(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        stmt = dialect_of(self._engine.dialect.name).insert(drift_samples)
        async with self._engine.begin() as conn:
            await conn.execute(stmt.on_conflict_do_nothing(), list(rows))

    async def samples(
        self,
        scope: DriftScope,
        window: Window,
        limit: int,
        *,
        embedder: str | None = None,
    ) -> list[dict[str, Any]]:
        """Sampled rows of a window (with an embedding of `embedder`, when given)."""
        c = drift_samples.c
        where = [c.created_at >= window.start, c.created_at < window.end]
        where += _scope(drift_samples, scope)
        if embedder is not None:
            where += [c.embedder == embedder, c.embedding.is_not(None)]
        stmt = select(drift_samples).where(*where).order_by(c.trace_id).limit(limit)
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def common_model(self, trace_ids: Sequence[str]) -> str | None:
        """The model most of these sampled traces asked for (None when none is sampled)."""
        if not trace_ids:
            return None
        c = drift_samples.c
        n = func.count().label("n")
        stmt = (
            select(c.model, n)
            .where(c.trace_id.in_(list(trace_ids)))
            .group_by(c.model)
            .order_by(n.desc(), c.model)
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return str(row[0]) if row is not None else None

    async def count_samples(self, scope: DriftScope, window: Window) -> int:
        c = drift_samples.c
        where = [c.created_at >= window.start, c.created_at < window.end]
        stmt = select(func.count()).where(*where, *_scope(drift_samples, scope))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def count_traces(self, scope: DriftScope, window: Window) -> int:
        c = traces.c
        where = [c.started_at >= window.start, c.started_at < window.end]
        stmt = select(func.count()).where(*where, *_scope(traces, scope, model="model_requested"))
        async with self._engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def traces(self, scope: DriftScope, window: Window, limit: int) -> list[dict[str, Any]]:
        """Sampled operational columns of the window's chat traces."""
        c = traces.c
        where = [c.started_at >= window.start, c.started_at < window.end, c.endpoint == "chat"]
        stmt = (
            select(c.trace_id, c.started_at, c.duration_ms, c.cost_micros, c.status)
            .where(*where, *_scope(traces, scope, model="model_requested"))
            .order_by(c.trace_id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def scores(
        self, scope: DriftScope, metric: str, window: Window, limit: int
    ) -> list[tuple[float, float]]:
        """(created_at, value) of a metric's scores in the window, sampled, in time order."""
        c = scores.c
        where = [
            c.metric == metric,
            c.value.is_not(None),
            c.created_at >= window.start,
            c.created_at < window.end,
        ]
        stmt = (
            select(c.created_at, c.value)
            .where(*where, *_scope(scores, scope))
            .order_by(c.score_id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = [(float(r[0]), float(r[1])) for r in await conn.execute(stmt)]
        return sorted(rows)

    async def erase(self, end_user: str) -> int:
        total = 0
        c = drift_samples.c
        while True:
            async with self._engine.begin() as conn:
                pick = select(c.trace_id).where(c.end_user == end_user).limit(BATCH)
                ids = [r[0] for r in await conn.execute(pick)]
                if ids:
                    await conn.execute(delete(drift_samples).where(c.trace_id.in_(ids)))
            total += len(ids)
            if len(ids) < BATCH:
                return total

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        c = drift_samples.c
        cols = [col for col in drift_samples.c if col.name != "embedding"]
        stmt = select(*cols).where(c.end_user == end_user).order_by(c.created_at)
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def delete_samples(self, where: Sequence[ColumnElement[bool]], batch: int) -> int:
        """One batch of samples matching `where` (the retention sweep)."""
        c = drift_samples.c
        async with self._engine.begin() as conn:
            ids = [r[0] for r in await conn.execute(select(c.trace_id).where(*where).limit(batch))]
            if ids:
                await conn.execute(delete(drift_samples).where(c.trace_id.in_(ids)))
        return len(ids)

    # -- monitors (created through the API) ------------------------------------------------

    async def monitors(self) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            stmt = select(drift_monitors).order_by(drift_monitors.c.name)
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def add_monitor(self, row: Mapping[str, Any]) -> bool:
        """False when the name is taken."""
        stmt = dialect_of(self._engine.dialect.name).insert(drift_monitors)
        async with self._engine.begin() as conn:
            done = await conn.execute(stmt.on_conflict_do_nothing(), dict(row))
        return bool(done.rowcount)

    async def delete_monitor(self, name: str) -> bool:
        async with self._engine.begin() as conn:
            done = await conn.execute(delete(drift_monitors).where(drift_monitors.c.name == name))
        return bool(done.rowcount)

    async def update_monitor(self, name: str, spec: Mapping[str, Any], now: float) -> None:
        stmt = (
            update(drift_monitors)
            .where(drift_monitors.c.name == name)
            .values(spec=dict(spec), updated_at=now)
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    # -- results ---------------------------------------------------------------------------

    async def add_result(self, row: Mapping[str, Any]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(drift_results.insert(), dict(row))

    async def claim(self, row: Mapping[str, Any], every: float) -> bool:
        """Insert `row` (state `running`) unless its monitor has a result, finished or claimed,
        newer than `every` seconds before `row["evaluated_at"]`; False when one has (another
        replica evaluated it, or is evaluating it, this period)."""
        c = drift_results.c
        recent = (
            select(c.id)
            .where(c.monitor == row["monitor"], c.evaluated_at > row["evaluated_at"] - every)
            .exists()
        )
        values = [
            cast(literal(row[col.name], type_=col.type), col.type).label(col.name)
            if col.name == "detail"
            else literal(row[col.name], type_=col.type).label(col.name)
            for col in drift_results.c
        ]
        stmt = drift_results.insert().from_select(
            [col.name for col in drift_results.c], select(*values).where(~recent)
        )
        async with self._engine.begin() as conn:
            if self._engine.dialect.name == "postgresql":  # SQLite: one writer at a time already
                lock = text("SELECT pg_advisory_xact_lock(:cls, hashtext(:name))")
                await conn.execute(lock, {"cls": _PG_LOCK_CLASS, "name": row["monitor"]})
            done = await conn.execute(stmt)
        return bool(done.rowcount)

    async def finish(self, row: Mapping[str, Any]) -> None:
        """Fill in a claimed result with its evaluation."""
        values = {k: v for k, v in row.items() if k != "id"}
        stmt = update(drift_results).where(drift_results.c.id == row["id"]).values(**values)
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def last_evaluated(self, monitor: str) -> tuple[float | None, str | None]:
        """When the monitor was last evaluated or claimed (by any replica), and the state of
        its newest finished result."""
        c = drift_results.c
        when = select(func.max(c.evaluated_at)).where(c.monitor == monitor)
        state = (
            select(c.state)
            .where(c.monitor == monitor, c.state != RUNNING)
            .order_by(c.evaluated_at.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            at = (await conn.execute(when)).scalar_one_or_none()
            found = (await conn.execute(state)).scalar_one_or_none()
        return (float(at) if at is not None else None), found

    async def results(
        self, monitor: str, *, limit: int = 100, since: float | None = None
    ) -> list[dict[str, Any]]:
        """A monitor's results, newest first."""
        c = drift_results.c
        where = [c.monitor == monitor, c.state != RUNNING]
        if since is not None:
            where.append(c.evaluated_at >= since)
        stmt = select(drift_results).where(*where).order_by(c.evaluated_at.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def latest(self) -> dict[str, dict[str, Any]]:
        """Each monitor's newest result."""
        c = drift_results.c
        newest = (
            select(c.monitor, func.max(c.evaluated_at).label("at"))
            .where(c.state != RUNNING)
            .group_by(c.monitor)
            .subquery()
        )
        stmt = select(drift_results).join(
            newest, (c.monitor == newest.c.monitor) & (c.evaluated_at == newest.c.at)
        )
        async with self._engine.connect() as conn:
            return {r["monitor"]: _plain(r) for r in (await conn.execute(stmt)).mappings()}

    async def result(self, result_id: str) -> dict[str, Any] | None:
        stmt = select(drift_results).where(
            drift_results.c.id == result_id, drift_results.c.state != RUNNING
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _plain(row) if row is not None else None

    # -- proposals -------------------------------------------------------------------------

    async def add_proposal(self, row: Mapping[str, Any]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(drift_proposals.insert(), dict(row))

    async def proposals(
        self, *, status: str | None = None, monitor: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        c = drift_proposals.c
        where: list[ColumnElement[bool]] = []
        if status:
            where.append(c.status == status)
        if monitor:
            where.append(c.monitor == monitor)
        stmt = select(drift_proposals).where(*where).order_by(c.created_at.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return [_plain(r) for r in (await conn.execute(stmt)).mappings()]

    async def proposal(self, proposal_id: str) -> dict[str, Any] | None:
        stmt = select(drift_proposals).where(drift_proposals.c.id == proposal_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        return _plain(row) if row is not None else None

    async def decide(
        self,
        proposal_id: str,
        status: str,
        who: str,
        now: float,
        outcome: Mapping[str, Any] | None,
    ) -> bool:
        """Close an open proposal; False when it was no longer open (a race lost)."""
        c = drift_proposals.c
        stmt = (
            update(drift_proposals)
            .where(c.id == proposal_id, c.status == "open")
            .values(status=status, decided_by=who, decided_at=now, outcome=outcome)
        )
        async with self._engine.begin() as conn:
            done = await conn.execute(stmt)
        return bool(done.rowcount)
