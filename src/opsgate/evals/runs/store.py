"""`EvalStore`: eval runs and their per-row results on SQLAlchemy Core (SQLite, PostgreSQL).

Results are written in batches with `ON CONFLICT DO NOTHING`, so a batch replayed after a
crash, or a row finished twice by a resumed run, is stored once. Reads stream results in
pages ordered by (target, row), so a 100k-row run is summarised in flat memory.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.store.dialect import dialect_of
from opsgate.store.tables.evals import eval_results, eval_runs

PAGE = 1_000
STATUSES = ("running", "completed", "cancelled", "budget_exceeded", "failed")
FINISHED = frozenset(STATUSES) - {"running"}


def new_run_id() -> str:
    return f"eval_{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    name: str
    status: str
    spec: dict[str, Any]
    dataset: str
    created_at: float
    updated_at: float
    owner: str | None = None
    team_id: str | None = None
    finished_at: float | None = None
    rows_done: int = 0
    cost_micros: int = 0
    error: str | None = None
    summary: dict[str, Any] | None = None
    user_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "eval.run",
            "name": self.name,
            "status": self.status,
            "dataset": self.dataset,
            "spec": self.spec,
            "owner": self.owner,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "rows_done": self.rows_done,
            "cost_usd": self.cost_micros / 1e6,
            "error": self.error,
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One dataset row run through one target and scored."""

    run_id: str
    target: str
    row_index: int
    status: str
    scores: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    row_id: str | None = None
    error: str | None = None
    trace_id: str | None = None
    latency_ms: float | None = None
    cost_micros: int = 0
    tokens: int = 0
    body: bytes | None = None
    created_at: float = 0.0


def _run(row: Any) -> RunInfo:
    m = row._mapping
    return RunInfo(
        m["id"], m["name"], m["status"], dict(m["spec"]), m["dataset"], m["created_at"],
        m["updated_at"], m["owner"], m["team_id"], m["finished_at"], m["rows_done"],
        m["cost_micros"], m["error"], m["summary"], m["user_id"],
    )  # fmt: skip


def _result(row: Any) -> ResultRow:
    m = row._mapping
    return ResultRow(
        m["run_id"], m["target"], m["row_index"], m["status"], dict(m["scores"]), m["row_id"],
        m["error"], m["trace_id"], m["latency_ms"], m["cost_micros"], m["tokens"],
        None if m["body"] is None else bytes(m["body"]), m["created_at"],
    )  # fmt: skip


class EvalStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        name: str,
        spec: Mapping[str, Any],
        dataset: str,
        *,
        owner: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
        run_id: str | None = None,
    ) -> RunInfo:
        now = time.time()
        info = RunInfo(run_id or new_run_id(), name, "running", dict(spec), dataset, now, now,
                       owner, team_id, user_id=user_id)  # fmt: skip
        async with self.engine.begin() as conn:
            await conn.execute(
                eval_runs.insert().values(
                    id=info.id,
                    name=name,
                    status=info.status,
                    spec=info.spec,
                    dataset=dataset,
                    owner=owner,
                    user_id=user_id,
                    team_id=team_id,
                    created_at=now,
                    updated_at=now,
                    rows_done=0,
                    cost_micros=0,
                )
            )
        return info

    async def get(self, run_id: str) -> RunInfo | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(eval_runs).where(eval_runs.c.id == run_id))).first()
        return None if row is None else _run(row)

    async def runs(self, scope: Mapping[str, str] | None = None, limit: int = 50) -> list[RunInfo]:
        """Newest first, limited to `scope` (`team_id`, `user_id`, `key_id` equalities, as
        `access.permissions.scope_filter` gives them)."""
        columns = {"team_id": eval_runs.c.team_id, "user_id": eval_runs.c.user_id,
                   "key_id": eval_runs.c.owner}  # fmt: skip
        query = select(eval_runs).order_by(eval_runs.c.created_at.desc()).limit(limit)
        for name, value in (scope or {}).items():
            query = query.where(columns[name] == value)
        async with self.engine.connect() as conn:
            return [_run(r) for r in await conn.execute(query)]

    async def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        now = time.time()
        values: dict[str, Any] = {"status": status, "updated_at": now, "error": error}
        values["finished_at"] = now if status in FINISHED else None
        if summary is not None:
            values["summary"] = dict(summary)
        async with self.engine.begin() as conn:
            await conn.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(**values))

    async def add_results(self, rows: Sequence[ResultRow]) -> None:
        """Store results (a row already stored is kept) and add them to the run's totals."""
        if not rows:
            return
        values = [
            {
                "run_id": r.run_id, "target": r.target, "row_index": r.row_index,
                "row_id": r.row_id, "status": r.status, "error": r.error,
                "trace_id": r.trace_id, "latency_ms": r.latency_ms,
                "cost_micros": r.cost_micros, "tokens": r.tokens, "scores": dict(r.scores),
                "body": r.body, "created_at": r.created_at or time.time(),
            }
            for r in rows
        ]  # fmt: skip
        run_id = rows[0].run_id
        async with self.engine.begin() as conn:
            insert = dialect_of(conn.dialect.name).insert(eval_results)
            statement = insert.on_conflict_do_nothing()
            await conn.execute(statement, values)
            totals = select(
                func.count(), func.coalesce(func.sum(eval_results.c.cost_micros), 0)
            ).where(eval_results.c.run_id == run_id)
            done, cost = (await conn.execute(totals)).one()
            await conn.execute(
                update(eval_runs)
                .where(eval_runs.c.id == run_id)
                .values(rows_done=int(done), cost_micros=int(cost), updated_at=time.time())
            )

    async def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """(target, row index) of every stored result: what a resumed run skips."""
        query = select(eval_results.c.target, eval_results.c.row_index).where(
            eval_results.c.run_id == run_id
        )
        async with self.engine.connect() as conn:
            return {(t, i) for t, i in await conn.execute(query)}

    async def results(
        self, run_id: str, *, target: str | None = None
    ) -> AsyncIterator[list[ResultRow]]:
        """Pages of results in (target, row index) order."""
        after: tuple[str, int] | None = None
        while True:
            query = select(eval_results).where(eval_results.c.run_id == run_id)
            if target is not None:
                query = query.where(eval_results.c.target == target)
            if after is not None:
                t, i = after
                query = query.where(
                    (eval_results.c.target > t)
                    | ((eval_results.c.target == t) & (eval_results.c.row_index > i))
                )
            query = query.order_by(eval_results.c.target, eval_results.c.row_index).limit(PAGE)
            async with self.engine.connect() as conn:
                page = [_result(r) for r in await conn.execute(query)]
            if not page:
                return
            yield page
            after = (page[-1].target, page[-1].row_index)
            if len(page) < PAGE:
                return
