"""Erasure tombstones, so an erased end user's traces cannot come back after the erasure.

An erasure deletes the end user's rows, but traces of theirs may still be on their way: in
another replica's writer queue, in a journal replayed once its database answers again, or in a
batch being written while the erasure runs. So the erasure first records a tombstone (table
`erasures`: the end user's pseudonym and when), and every trace write drops, inside its own
transaction, the records of a tombstoned end user that began at or before the erasure. Traces
that began after it are kept: the user came back.

There is no window between a write's check and the erasure's delete sweep, which runs after the
tombstone has committed:

- SQLite: a write holds the database's write lock from before its check until its commit, so the
  tombstone commits either before the write (the check sees it) or after it (the sweep finds the
  rows and deletes them).
- PostgreSQL (READ COMMITTED, where holding no lock proves nothing): a write takes advisory lock
  `PG_LOCK_KEY` shared before its check, the tombstone takes it exclusive; the tombstone commits
  only when no write that might have missed it is in flight, and every later write sees it.

A batch without end users does neither: no lock, no query.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.identity import pseudonym
from opsgate.store.dialect import Statement, dialect_of
from opsgate.store.tables.traces import erasures
from opsgate.trace import TraceRecord

PG_LOCK_KEY = 0x6F706572  # "oper": every replica; the audit log uses "opau", migrations "opsg"
LOCK_TIMEOUT = "30s"
"""How long a tombstone waits for the writes in flight before the erasure fails (503)."""


def subject(end_user: str) -> str:
    """The tombstone's key: the same pseudonym the audit log names the end user by."""
    return pseudonym("end_user", end_user)


def subjects(records: Iterable[TraceRecord]) -> dict[str, str]:
    """{subject: end user} for the end users of a batch; empty when none has one."""
    users = {r.end_user for r in records if r.end_user}
    return {subject(user): user for user in users}


def write_lock(dialect: str) -> list[Statement]:
    """The write side: the first statements of a write whose batch has end users (PostgreSQL:
    the shared advisory lock; SQLite: none, its write lock is enough)."""
    sql = dialect_of(dialect).transaction_lock(PG_LOCK_KEY, shared=True)
    return [Statement(sql, ())] if sql else []


def lookup(dialect: str, keys: Sequence[str]) -> list[Statement]:
    """Which of the `keys` (subjects) have a tombstone, with its time: zero rows, normally."""
    return dialect_of(dialect).matching("SELECT subject, erased_at FROM erasures", "subject", keys)


def erased_at(users: Mapping[str, str], rows: Iterable[Sequence[Any]]) -> dict[str, float]:
    """{end user: erased_at} from `lookup`'s rows and the batch's `subjects`."""
    return {users[row[0]]: float(row[1]) for row in rows}


def is_erased(record: TraceRecord, erased: Mapping[str, float]) -> bool:
    """Whether the record began at or before its end user's latest erasure."""
    at = erased.get(record.end_user) if record.end_user else None
    return at is not None and record.started_at <= at


async def record_erasure(
    engine: AsyncEngine, end_user: str, clock: Callable[[], float] = time.time
) -> float:
    """Write (or move forward) the end user's tombstone in a transaction of its own; returns
    its time. On PostgreSQL it waits for the writes in flight (see the module docstring)."""
    sql = dialect_of(engine.dialect.name)
    async with engine.begin() as conn:
        for lock in (sql.lock_timeout(LOCK_TIMEOUT), sql.transaction_lock(PG_LOCK_KEY)):
            if lock is not None:
                await conn.execute(text(lock))
        at = float(clock())  # taken under the lock: every write after it sees this time
        stmt: Any = sql.insert(erasures)
        latest = getattr(func, sql.greatest)(erasures.c.erased_at, stmt.excluded.erased_at)
        stmt = stmt.values(subject=subject(end_user), erased_at=at)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["subject"], set_={"erased_at": latest})
        )
    return at


async def erasure_time(engine: AsyncEngine, end_user: str) -> float | None:
    """When the end user was last erased, if ever."""
    async with engine.connect() as conn:
        found = await conn.execute(
            select(erasures.c.erased_at).where(erasures.c.subject == subject(end_user))
        )
        at = found.scalar_one_or_none()
    return None if at is None else float(at)
