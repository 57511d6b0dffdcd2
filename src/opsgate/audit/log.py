"""`AuditLog`: append-only, hash-chained admin history in SQL (SQLite or PostgreSQL).

Appends are written before the caller goes on (admin actions and body reads, never the request
hot path), so an action is not reported done without its entry. The chain stays one line across
replicas: on PostgreSQL a transaction-scoped advisory lock serialises appends; everywhere the
primary key on `seq` refuses a second entry with the same number, and the loser re-reads the head
and tries again (SQLite's single writer makes that rare).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.audit.chain import (
    GENESIS,
    Anchor,
    AuditEntry,
    VerifyResult,
    broken_link,
    canonical_detail,
    make_entry,
)
from opsgate.store.codec import clean_text
from opsgate.store.dialect import dialect_of
from opsgate.store.tables.audit import audit_log

log = logging.getLogger("opsgate.audit")

_PG_LOCK_KEY = 0x6F706175  # "opau": shared by every replica
_RETRIES = 60
_MAX_WAIT_S = 15.0
"""How long an append keeps retrying a SQLite database another process holds locked."""
_COLUMNS = ("seq", "at", "actor", "action", "target", "detail", "prev_hash", "hash")


class AuditUnavailableError(Exception):
    """The audit entry could not be written; the action it describes must not proceed."""


def _entry(row: Row[Any]) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        int(m["seq"]),
        float(m["at"]),
        m["actor"],
        m["action"],
        m["target"],
        m["detail"],
        m["prev_hash"],
        m["hash"],
    )


class AuditLog:
    """Reachable at runtime as `request.app.state.gateway.audit`."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = asyncio.Lock()  # one appender per process; replicas race in the database
        self._xact_lock = dialect_of(engine.dialect.name).transaction_lock(_PG_LOCK_KEY)
        """Replicas append one at a time (SQLite: its write lock is enough)."""
        self.observers: list[Callable[[AuditEntry], object]] = []
        """Told of each entry once it is written (breach alerts count body reads and exports);
        they must be quick and must not raise."""

    async def append(
        self, actor: str, action: str, target: str, detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Add one entry at the head of the chain; raises `AuditUnavailableError` on failure."""
        fields = (
            clean_text(actor),
            clean_text(action),
            clean_text(target),
            canonical_detail(detail),
        )
        async with self._lock:
            deadline = time.monotonic() + _MAX_WAIT_S
            for attempt in range(_RETRIES):
                try:
                    async with self._engine.begin() as conn:
                        entry = await self._append(conn, *fields)
                    self._tell(entry)
                    return entry
                except IntegrityError:
                    pass  # another process took this seq: read the new head and go again
                except OperationalError as exc:
                    busy = "locked" in str(exc) or "busy" in str(exc)  # SQLite: another writer
                    if not busy or time.monotonic() > deadline:
                        raise AuditUnavailableError(f"audit log unavailable: {exc}") from exc
                except (OSError, TimeoutError, SQLAlchemyError) as exc:
                    raise AuditUnavailableError(f"audit log unavailable: {exc}") from exc
                await asyncio.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.2)))
        raise AuditUnavailableError("audit log append kept conflicting with other writers")

    def _tell(self, entry: AuditEntry) -> None:
        for observer in self.observers:
            try:
                observer(entry)
            except Exception:  # an observer's bug must not fail an action already audited
                log.exception("audit observer failed on entry %s", entry.seq)

    async def _append(
        self, conn: AsyncConnection, actor: str, action: str, target: str, detail: str
    ) -> AuditEntry:
        if self._xact_lock is not None:
            await conn.execute(text(self._xact_lock))
        head = await self._head(conn)
        entry = make_entry(head, round(self._clock(), 6), actor, action, target, detail)
        await conn.execute(insert(audit_log).values({c: getattr(entry, c) for c in _COLUMNS}))
        return entry

    @staticmethod
    async def _head(conn: AsyncConnection) -> AuditEntry | None:
        stmt = select(audit_log).order_by(audit_log.c.seq.desc()).limit(1)
        row = (await conn.execute(stmt)).first()
        return _entry(row) if row is not None else None

    async def head(self) -> AuditEntry | None:
        async with self._engine.connect() as conn:
            return await self._head(conn)

    async def entries(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; `before` is a seq (the previous page's last)."""
        stmt = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if before is not None:
            stmt = stmt.where(audit_log.c.seq < before)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        if actor is not None:
            stmt = stmt.where(audit_log.c.actor == actor)
        async with self._engine.connect() as conn:
            return [_entry(row) for row in await conn.execute(stmt)]

    async def verify(self, *, page: int = 1000, anchor: Anchor | None = None) -> VerifyResult:
        """Walk the chain from seq 1; the first link that does not hold is reported. With an
        `anchor` (an entry's seq and hash kept elsewhere), a chain that ends before it or
        holds another hash at its seq does not hold either."""
        expected, prev_hash, checked = 1, GENESIS, 0
        async with self._engine.connect() as conn:
            while True:
                stmt = (
                    select(audit_log)
                    .where(audit_log.c.seq >= expected)
                    .order_by(audit_log.c.seq)
                    .limit(page)
                )
                rows = [_entry(r) for r in await conn.execute(stmt)]
                for entry in rows:
                    reason = broken_link(entry, expected, prev_hash) or (
                        anchor.mismatch(entry) if anchor is not None else None
                    )
                    if reason is not None:
                        head = prev_hash if checked else None
                        return VerifyResult(False, checked, expected, reason, head)
                    expected, prev_hash, checked = expected + 1, entry.hash, checked + 1
                if len(rows) < page:
                    head = prev_hash if checked else None
                    if anchor is not None and checked < anchor.seq:
                        reason = f"the log ends before the anchor at seq {anchor.seq} (cut off)"
                        return VerifyResult(False, checked, expected, reason, head)
                    return VerifyResult(True, checked, head_hash=head)
