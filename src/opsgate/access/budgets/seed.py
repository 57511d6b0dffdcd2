"""Spend survives restarts: budget counters are rebuilt from the database, off the request path.

The database already knows every request's cost (`usage_minute`, written by the trace writer),
so nothing extra is persisted. Two moments need it:

- start-up (`BudgetSeeder.warm`, awaited before serving): every scope with spend in the current
  day, week, month (and ever, for `total`) gets a counter that starts from that spend, unless
  one already exists (Redis kept it).
- later (`BudgetSeeder.run`, a background task): a counter that reservations find without its
  database spend (Redis flushed, a new period, a scope first seen) is seeded with the spend
  recorded before the minute it was created, so the live spend it already counts is not added
  twice. Spend from that minute before the counter existed is missed: at most one minute of
  one scope, and only after a cold start.

The request path never waits for the database: an unseeded counter admits against what it has
counted so far until the seed lands (normally milliseconds later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from opsgate.access.budgets.ledger import LedgerBase
from opsgate.access.budgets.model import PERIODS, Period, period_of
from opsgate.access.limits.model import ScopeKind, ScopeRef
from opsgate.store.repository import TraceStore
from opsgate.store.usage import UsageDimension, UsageQuery, minute_of

log = logging.getLogger("opsgate.access")

ONE_BUCKET = 60 * 10**9
"""A rollup step wider than any epoch: every row lands in bucket 0, i.e. a plain sum."""

_DIMENSIONS: dict[ScopeKind, tuple[UsageDimension, ...]] = {
    "key": ("key_id",),
    "team": ("team_id",),
    "user": ("key_id", "end_user"),
}


class SpendLoader(Protocol):
    """Recorded spend (micro-dollars) from the database, by scope."""

    async def spend(self, ref: ScopeRef, since: float, until: float) -> int: ...

    async def spend_all(
        self, kind: ScopeKind, since: float, until: float
    ) -> dict[ScopeRef, int]: ...


class StoreSpendLoader:
    """`SpendLoader` over any `TraceStore`'s usage rollups (SQLite, PostgreSQL, memory)."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    async def spend(self, ref: ScopeRef, since: float, until: float) -> int:
        if until <= since:
            return 0
        dims = _DIMENSIONS[ref.kind]
        values = (ref.parent or "", ref.id) if ref.kind == "user" else (ref.id,)
        query = UsageQuery(
            since=since, until=until, step=ONE_BUCKET, filters=dict(zip(dims, values, strict=True))
        )
        return sum(row.cost_micros for row in await self.store.usage(query))

    async def spend_all(self, kind: ScopeKind, since: float, until: float) -> dict[ScopeRef, int]:
        dims = _DIMENSIONS[kind]
        query = UsageQuery(since=since, until=until, step=ONE_BUCKET, group_by=dims)
        found: dict[ScopeRef, int] = {}
        for row in await self.store.usage(query):
            if kind == "user":
                key_id, user = row.group["key_id"], row.group["end_user"]
                if key_id and user:
                    found[ScopeRef("user", user, key_id)] = row.cost_micros
            elif row.group[dims[0]]:
                found[ScopeRef(kind, row.group[dims[0]])] = row.cost_micros
        return found


class BudgetSeeder:
    """Seeds a ledger's counters from a `SpendLoader`; owns the background task."""

    def __init__(self, ledger: LedgerBase, loader: SpendLoader, *, retry_s: float = 5.0) -> None:
        self.ledger = ledger
        self.loader = loader
        self.retry_s = retry_s
        self.seeded = 0
        self._task: asyncio.Task[None] | None = None
        ledger.track_unseeded = True

    async def warm(self, kinds: tuple[ScopeKind, ...] = ("key", "team", "user")) -> int:
        """Create counters for every scope with spend in the current periods; returns how
        many were created. A database error is logged and start-up goes on."""
        now = self.ledger.now()
        created = 0
        for name in PERIODS:
            period = period_of(name, now)
            for kind in kinds:
                try:
                    sums = await self.loader.spend_all(kind, period.start, now + 60)
                except Exception as exc:
                    log.warning("budget warm-up could not read spend (%s): %s", name, exc)
                    continue
                for ref, micros in sums.items():
                    created += await self.ledger.seed(ref, period, micros, only_if_missing=True)
        return created

    async def seed_pending(self) -> int:
        """Seed every counter noted as unseeded; failures stay queued for the next round."""
        pending = self.ledger.unseeded
        done = 0
        for key, (ref, period, created) in list(pending.items()):
            try:
                await self._seed_one(ref, period, created)
            except Exception as exc:
                log.warning("could not seed the budget of %s: %s", ref.label, exc)
                continue
            pending.pop(key, None)
            done += 1
        self.seeded += done
        return done

    async def _seed_one(self, ref: ScopeRef, period: Period, created: float) -> None:
        micros = await self.loader.spend(ref, period.start, minute_of(created))
        await self.ledger.seed(ref, period, micros, only_if_missing=False)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        event = self.ledger.unseeded_added
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_s):
                    await event.wait()
            event.clear()
            await self.seed_pending()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
