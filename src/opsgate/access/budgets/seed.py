"""Spend survives restarts: budget counters are rebuilt from the database, off the request path.

The database already knows every request's cost (usage rows, written by the trace writer; the
traces themselves for a part of a minute), so nothing extra is persisted. A counter counts
the requests that started within [`Period.start`, now) (its period, from the moment the budget
was attached: `budget_period`); the database supplies those that started before the counter
existed, the counter itself those admitted since. Two moments need it:

- start-up (`BudgetSeeder.warm`, awaited before serving): every scope with spend in the current
  day, week, month (and ever, for `total`) gets a counter that starts from that spend, unless
  one already exists (Redis kept it); so does every budget attached during its current period
  (it has a counter of its own, from the moment it was attached).
- later (`BudgetSeeder.run`, a background task): a counter that reservations find without its
  database spend (Redis flushed, a new period, a budget just attached) is seeded with the spend
  of the requests that started in [`Period.start`, the start of the request that created it):
  whole minutes from the usage rows, the parts of a minute at either end from the traces. The
  requests it counts live started at or after that moment, so none is counted twice or missed.

The request path never waits for the database: an unseeded counter admits against what it has
counted so far until the seed lands (normally milliseconds later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Protocol

from opsgate.access.budgets.ledger import LedgerBase
from opsgate.access.budgets.model import PERIODS, BudgetScope, Period, budget_period, period_of
from opsgate.access.limits.model import ScopeKind, ScopeRef
from opsgate.access.principal import BudgetPolicy
from opsgate.store.queries import MAX_LIMIT, TraceQuery
from opsgate.store.repository import TraceStore
from opsgate.store.usage import UsageDimension, UsageQuery, minute_of
from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.access")

ONE_BUCKET = 60 * 10**9
"""A rollup step wider than any epoch: every row lands in bucket 0, i.e. a plain sum."""

_DIMENSIONS: dict[ScopeKind, tuple[UsageDimension, ...]] = {
    "key": ("key_id",),
    "team": ("team_id",),
    "user": ("key_id", "end_user"),
}


class SpendLoader(Protocol):
    """Recorded spend (micro-dollars) from the database, by scope, of the requests that
    started in [since, until) (any bounds, not only whole minutes)."""

    async def spend(self, ref: ScopeRef, since: float, until: float) -> int: ...

    async def spend_all(
        self, kind: ScopeKind, since: float, until: float, key_id: str | None = None
    ) -> dict[ScopeRef, int]:
        """Every scope of `kind` with spend; `key_id` narrows end users to one key's."""
        ...


def _ref(kind: ScopeKind, values: Sequence[str]) -> ScopeRef | None:
    if not all(values):
        return None
    return ScopeRef("user", values[1], values[0]) if kind == "user" else ScopeRef(kind, values[0])


class StoreSpendLoader:
    """`SpendLoader` over any `TraceStore` (SQLite, PostgreSQL, memory): usage rollups for the
    whole minutes, the traces for the seconds of a minute at either end."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    async def spend(self, ref: ScopeRef, since: float, until: float) -> int:
        dims = _DIMENSIONS[ref.kind]
        values = (ref.parent or "", ref.id) if ref.kind == "user" else (ref.id,)
        found = await self._sums(ref.kind, since, until, dict(zip(dims, values, strict=True)))
        return found.get(ref, 0)

    async def spend_all(
        self, kind: ScopeKind, since: float, until: float, key_id: str | None = None
    ) -> dict[ScopeRef, int]:
        return await self._sums(kind, since, until, {"key_id": key_id} if key_id else {})

    async def _sums(
        self, kind: ScopeKind, since: float, until: float, filters: dict[UsageDimension, str]
    ) -> dict[ScopeRef, int]:
        found: dict[ScopeRef, int] = {}
        if until <= since:
            return found
        first, last = math.ceil(since / 60) * 60, minute_of(until)
        if first >= last:  # no whole minute: the traces alone
            await self._traced(kind, since, until, filters, found)
            return found
        query = UsageQuery(first, last, ONE_BUCKET, _DIMENSIONS[kind], filters)
        for row in await self.store.usage(query):
            ref = _ref(kind, [row.group[d] for d in _DIMENSIONS[kind]])
            if ref is not None:
                found[ref] = found.get(ref, 0) + row.cost_micros
        await self._traced(kind, since, first, filters, found)
        await self._traced(kind, last, until, filters, found)
        return found

    async def _traced(
        self,
        kind: ScopeKind,
        since: float,
        until: float,
        filters: dict[UsageDimension, str],
        found: dict[ScopeRef, int],
    ) -> None:
        """Add the cost of the traces that started in [since, until) (part of one minute)."""
        if until <= since:
            return
        cursor: str | None = None
        while True:
            query = TraceQuery(
                since=since,
                until=until,
                key_id=filters.get("key_id"),
                team_id=filters.get("team_id"),
                end_user=filters.get("end_user"),
                limit=MAX_LIMIT,
                cursor=cursor,
            )
            listed = await self.store.list_traces(query)
            for record in listed.items:
                ref = _ref(kind, _scope_values(kind, record))
                if ref is not None:
                    found[ref] = found.get(ref, 0) + record.cost_micros
            cursor = listed.next_cursor
            if cursor is None:
                return


def _scope_values(kind: ScopeKind, record: TraceRecord) -> list[str]:
    if kind == "user":
        return [record.key_id or "", record.end_user or ""]
    return [(record.key_id if kind == "key" else record.team_id) or ""]


class BudgetSeeder:
    """Seeds a ledger's counters from a `SpendLoader`; owns the background task."""

    def __init__(self, ledger: LedgerBase, loader: SpendLoader, *, retry_s: float = 5.0) -> None:
        self.ledger = ledger
        self.loader = loader
        self.retry_s = retry_s
        self.seeded = 0
        self._task: asyncio.Task[None] | None = None
        ledger.track_unseeded = True

    async def warm(
        self,
        kinds: tuple[ScopeKind, ...] = ("key", "team", "user"),
        *,
        budgets: Sequence[BudgetScope] = (),
        end_users: Mapping[str, BudgetPolicy] | None = None,
    ) -> int:
        """Create counters for every scope with spend in the current periods, and for the
        `budgets` (and end-user budgets by key id, `end_users`) attached within theirs;
        returns how many were created. A database error is logged and start-up goes on."""
        now = self.ledger.now()
        until = minute_of(now) + 60  # everything recorded so far
        created = 0
        for name in PERIODS:
            period = period_of(name, now)
            for kind in kinds:
                created += await self._warm(kind, period, until)
        for scope in budgets:
            period = budget_period(scope.policy, now)
            if period.start > period_of(period.name, now).start:
                created += await self._warm(scope.ref.kind, period, until, scope.ref)
        for key_id, policy in (end_users or {}).items():
            period = budget_period(policy, now)
            if period.start > period_of(period.name, now).start:
                created += await self._warm("user", period, until, key_id=key_id)
        return created

    async def _warm(
        self,
        kind: ScopeKind,
        period: Period,
        until: float,
        ref: ScopeRef | None = None,
        key_id: str | None = None,
    ) -> int:
        try:
            if ref is not None:
                sums = {ref: await self.loader.spend(ref, period.start, until)}
            else:
                sums = await self.loader.spend_all(kind, period.start, until, key_id)
        except Exception as exc:
            log.warning("budget warm-up could not read spend (%s): %s", period.key, exc)
            return 0
        created = 0
        for found, micros in sums.items():
            created += await self.ledger.seed(found, period, micros, only_if_missing=True)
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
        micros = await self.loader.spend(ref, period.start, created)
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
