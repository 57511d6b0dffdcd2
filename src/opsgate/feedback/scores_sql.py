"""`ScoreStore` on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

Batches go through `store.dialect` (SQLite multi-row VALUES, PostgreSQL one `unnest` insert)
with `ON CONFLICT (score_id) DO NOTHING`, so a replayed batch adds nothing twice. A batch with
end users checks their erasure tombstones in the same transaction, as trace writes do
(store/erasures.py), and drops the scores of an end user erased after the scored trace began: a
score that arrives late cannot bring an erased user back. A SQLite file is written from a
thread of its own instead (feedback/scores_sqlite.py).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.feedback.scores import (
    MetricTotals,
    RollupQuery,
    RollupRow,
    Score,
    ScorePage,
    ScoreQuery,
)
from opsgate.store import erasures
from opsgate.store.batch import execute_async
from opsgate.store.codec import clean_text, dump_json
from opsgate.store.dialect import dialect_of
from opsgate.store.errors import StoreUnavailableError
from opsgate.store.queries import decode_cursor, encode_cursor
from opsgate.store.sql import CAUGHT, translate
from opsgate.store.tables.feedback import scores

COLUMNS = tuple(c.name for c in scores.columns)
NEW_ONLY = "ON CONFLICT (score_id) DO NOTHING"
"""Writes are idempotent: a score id already stored is skipped (no RETURNING: nothing needs the
new ids, and SQLite steps a RETURNING statement once per row)."""
_FIELDS = frozenset(f.name for f in dataclasses.fields(Score))
assert set(COLUMNS) == _FIELDS, set(COLUMNS) ^ _FIELDS
_getter = operator.attrgetter(*COLUMNS)
_TEXT = frozenset({"comment", "label", "session_id", "idempotency_key"})
_JSON = frozenset({"correction", "metadata"})


def score_values(score: Score) -> tuple[Any, ...]:
    """The row of `score` for `store.batch` (JSON as text, text safe for any database)."""
    values = list(_getter(score))
    for i, name in enumerate(COLUMNS):
        value = values[i]
        if value is None:
            continue
        if name in _JSON:
            values[i] = dump_json(value).decode()
        elif name in _TEXT:
            values[i] = clean_text(value)
    return tuple(values)


def score_from_row(row: Mapping[Any, Any]) -> Score:
    return Score(**{name: row[name] for name in COLUMNS})


def unique(batch: Sequence[Score]) -> list[Score]:
    """One score per id, ordered by id: a stable lock order across replicas."""
    found: dict[str, Score] = {}
    for score in batch:
        found.setdefault(score.score_id, score)
    return [found[key] for key in sorted(found)]


class SqlScoreStore:
    """Scores in the `scores` table (store/tables/feedback.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def write_batch(self, batch: Sequence[Score]) -> None:
        if not batch:
            return
        try:
            async with self._engine.begin() as conn:
                await self._write(conn, unique(batch))
        except CAUGHT as exc:
            raise translate(exc) from exc

    async def _write(self, conn: AsyncConnection, batch: list[Score]) -> None:
        users = {erasures.subject(s.end_user): s.end_user for s in batch if s.end_user}
        for lock in erasures.write_lock(self._dialect) if users else []:
            await execute_async(conn, lock)
        rows = [score_values(s) for s in batch]
        for statement in dialect_of(self._dialect).insert_rows(scores, rows, NEW_ONLY):
            await execute_async(conn, statement)
        if not users:
            return
        # After the insert: aiosqlite opens the transaction (and the write lock) at the first
        # write, so only now is the tombstone check inside it (see SqlTraceStore._drop_erased).
        found = [
            row
            for s in erasures.lookup(self._dialect, list(users))
            for row in await execute_async(conn, s)
        ]
        gone = erased_ids(batch, erasures.erased_at(users, found)) if found else []
        if gone:
            await conn.execute(delete(scores).where(scores.c.score_id.in_(gone)))

    async def list_scores(self, query: ScoreQuery) -> ScorePage:
        stmt = (
            select(scores)
            .where(*where(query))
            .order_by(scores.c.created_at.desc(), scores.c.score_id.desc())
            .limit(query.limit + 1)
        )
        rows = await self._read(stmt)
        items = rows[: query.limit]
        more = len(rows) > query.limit
        cursor = encode_cursor(items[-1].created_at, items[-1].score_id) if more else None
        return ScorePage(items, cursor)

    async def for_traces(self, trace_ids: Sequence[str]) -> list[Score]:
        if not trace_ids:
            return []
        stmt = select(scores).where(scores.c.trace_id.in_(list(trace_ids)))
        return await self._read(stmt.order_by(scores.c.created_at, scores.c.score_id))

    async def for_sessions(
        self, session_ids: Sequence[str], scope: Mapping[str, str]
    ) -> list[Score]:
        if not session_ids:
            return []
        stmt = select(scores).where(
            scores.c.session_id.in_(list(session_ids)),
            scores.c.trace_id.is_(None),
            *(scores.c[name] == value for name, value in scope.items()),
        )
        return await self._read(stmt.order_by(scores.c.created_at, scores.c.score_id))

    async def rollup(self, query: RollupQuery) -> list[RollupRow]:
        try:
            async with self._engine.connect() as conn:
                stmt = _rollup_statement(query, self._dialect)
                result = (await conn.execute(stmt)).all()
        except CAUGHT as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return fold_rollup(query, [tuple(r) for r in result])

    async def _read(self, stmt: Select[Any]) -> list[Score]:
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        except CAUGHT as exc:
            raise StoreUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        return [score_from_row(row) for row in rows]


def erased_ids(batch: Sequence[Score], erased: Mapping[str, float]) -> list[str]:
    """The batch's scores of end users erased (`{end user: erased_at}`) after the scored trace
    began: deleted in the write's own transaction. A score id stored before, by a replay or
    another replica, is in the same case and goes too."""
    never = -1.0  # below any epoch: not erased
    return [s.score_id for s in batch if s.began_at <= erased.get(s.end_user or "", never)]


def where(query: ScoreQuery) -> list[ColumnElement[bool]]:
    """The SQL conditions for `query`, cursor included."""
    c = scores.c
    conditions: list[ColumnElement[bool]] = [c[col] == v for col, v in query.equalities()]
    if query.since is not None:
        conditions.append(c.created_at >= query.since)
    if query.until is not None:
        conditions.append(c.created_at < query.until)
    if query.cursor is not None:
        at, score_id = decode_cursor(query.cursor)
        conditions.append(or_(c.created_at < at, and_(c.created_at == at, c.score_id < score_id)))
    return conditions


def _rollup_statement(query: RollupQuery, dialect: str) -> Select[Any]:
    c = scores.c
    # The step is inlined: PostgreSQL matches GROUP BY expressions by their text.
    step: ColumnElement[int] = literal_column(str(int(query.step)))
    periods = dialect_of(dialect).floor(c.created_at / step)  # epochs are positive
    bucket = (periods * step).label("bucket")
    dims = [func.coalesce(c[name], "").label(name) for name in query.group_by]
    keys = [bucket, *dims, c.metric, c.type, c.label]
    return (
        select(
            *keys,
            func.count().label("n"),
            func.sum(c.value).label("total"),
            func.min(c.value).label("low"),
            func.max(c.value).label("high"),
        )
        .where(
            c.created_at >= query.since,
            c.created_at < query.until,
            *(func.coalesce(c[name], "") == value for name, value in query.filters.items()),
        )
        .group_by(*keys)
    )


def fold_rollup(query: RollupQuery, rows: Sequence[tuple[Any, ...]]) -> list[RollupRow]:
    """Rows of (bucket, *dims, metric, type, label, n, total, low, high) into one `RollupRow`
    per bucket and group, each holding its metrics' totals."""
    dims = len(query.group_by)
    acc: dict[tuple[int, tuple[str, ...]], dict[str, dict[str, Any]]] = {}
    for row in rows:
        bucket = int(float(row[0]))
        group = tuple(str(v) for v in row[1 : 1 + dims])
        metric, kind, label, n, total, low, high = row[1 + dims :]
        slot = acc.setdefault((bucket, group), {}).setdefault(
            metric, {"type": kind, "n": 0, "sum": 0.0, "low": None, "high": None, "labels": {}}
        )
        slot["n"] += int(n)
        if total is not None:
            slot["sum"] += float(total)
            slot["low"] = float(low) if slot["low"] is None else min(slot["low"], float(low))
            slot["high"] = float(high) if slot["high"] is None else max(slot["high"], float(high))
        if label is not None:
            slot["labels"][label] = slot["labels"].get(label, 0) + int(n)
    out = []
    for (bucket, group), metrics in sorted(acc.items()):
        totals = {name: _totals(name, slot) for name, slot in sorted(metrics.items())}
        out.append(RollupRow(bucket, dict(zip(query.group_by, group, strict=True)), totals))
    return out


def _totals(metric: str, slot: dict[str, Any]) -> MetricTotals:
    valued = slot["type"] in ("boolean", "float") and slot["low"] is not None
    return MetricTotals(
        metric=metric,
        type=slot["type"],
        count=slot["n"],
        mean=slot["sum"] / slot["n"] if valued and slot["n"] else None,
        min=slot["low"] if slot["type"] == "float" else None,
        max=slot["high"] if slot["type"] == "float" else None,
        labels=dict(sorted(slot["labels"].items())),
    )
