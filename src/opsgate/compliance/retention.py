"""Retention: delete traces, and clear bodies, once they are older than their policy allows.

A pass turns the `retention:` config into one rule per scope that sets a field (key, then team,
then the default, the most specific winning field by field) and works each rule off in batches:
pick `batch_size` ids by `started_at`, delete (or clear) them in one short transaction, yield,
repeat. Requests never wait on it. Every replica may run it: a second pass finds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import ColumnElement, Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.audit import AuditLog
from opsgate.config.compliance import RetentionConfig, RetentionPolicy
from opsgate.store.tables.traces import traces

log = logging.getLogger("opsgate.compliance.retention")

DAY = 86_400.0
FIRST_PASS_DELAY = 10.0
"""Seconds after start-up before the first pass, so it never competes with migrations."""


@dataclass(frozen=True, slots=True)
class Rule:
    where: tuple[ColumnElement[bool], ...]
    days: float


@dataclass(frozen=True, slots=True)
class RetentionReport:
    traces_deleted: int = 0
    bodies_cleared: int = 0
    swept: dict[str, int] = field(default_factory=dict)
    """Rows each registered `Sweep` deleted, by its name (e.g. `scores`)."""


class Sweep(Protocol):
    """Another part's data that expires with the `retention:` policy (scores, dataset rows).
    Registered with `Retention.register`; run after the traces on every pass."""

    name: str

    async def sweep(self, config: RetentionConfig, now: float) -> int:
        """Delete what the policy no longer keeps (as of `now`); how many rows went."""
        ...


def _overrides(scopes: dict[str, RetentionPolicy], name: str) -> dict[str, float | None]:
    """The scopes that set `name` themselves (null included: keep forever)."""
    return {scope: getattr(p, name) for scope, p in scopes.items() if name in p.model_fields_set}


def rules(config: RetentionConfig, name: str, table: Table = traces) -> list[Rule]:
    """The rules for one field (`traces_days` or `bodies_days`); disjoint by construction.
    `table`: any table with `key_id` and `team_id` columns (traces, or a sweep's)."""
    c = table.c
    keys, teams = _overrides(config.keys, name), _overrides(config.teams, name)
    found: list[Rule] = []
    not_key: tuple[ColumnElement[bool], ...] = ()
    if keys:
        not_key = (or_(c.key_id.is_(None), c.key_id.not_in(list(keys))),)
    for key_id, days in keys.items():
        if days is not None:
            found.append(Rule((c.key_id == key_id,), days))
    for team_id, days in teams.items():
        if days is not None:
            found.append(Rule((c.team_id == team_id, *not_key), days))
    default = getattr(config.default, name)
    if default is not None:
        not_team: tuple[ColumnElement[bool], ...] = ()
        if teams:
            not_team = (or_(c.team_id.is_(None), c.team_id.not_in(list(teams))),)
        found.append(Rule((*not_key, *not_team), default))
    return found


class Retention:
    """Runs passes: `run_once()` on demand, or every `interval` seconds after `start()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: Callable[[], RetentionConfig],
        *,
        audit: AuditLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._config = config  # a callable: a config reload changes the policy
        self._audit = audit
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.sweeps: list[Sweep] = []

    def register(self, sweep: Sweep) -> None:
        self.sweeps.append(sweep)

    async def run_once(self) -> RetentionReport:
        config = self._config()
        now = self._clock()
        deleted = cleared = 0
        for rule in rules(config, "traces_days"):
            deleted += await self._batches(rule, now, config, clear=False)
        for rule in rules(config, "bodies_days"):
            cleared += await self._batches(rule, now, config, clear=True)
        swept = {sweep.name: await sweep.sweep(config, now) for sweep in self.sweeps}
        report = RetentionReport(deleted, cleared, swept)
        if (deleted or cleared or any(swept.values())) and self._audit is not None:
            detail = {"traces_deleted": deleted, "bodies_cleared": cleared}
            detail.update({f"{name}_deleted": count for name, count in swept.items()})
            await self._audit.append("system:retention", "retention.pass", "traces", detail)
        return report

    async def _batches(
        self, rule: Rule, now: float, config: RetentionConfig, *, clear: bool
    ) -> int:
        where = [*rule.where, traces.c.started_at < now - rule.days * DAY]
        if clear:
            where.append(
                or_(traces.c.request_body.is_not(None), traces.c.response_body.is_not(None))
            )
        pick = select(traces.c.trace_id).where(*where).order_by(traces.c.started_at)
        total = 0
        while True:
            async with self._engine.begin() as conn:
                ids = [r[0] for r in await conn.execute(pick.limit(config.batch_size))]
                if ids and clear:
                    stmt = update(traces).where(traces.c.trace_id.in_(ids))
                    await conn.execute(stmt.values(request_body=None, response_body=None))
                elif ids:  # spans go with them: ON DELETE CASCADE (foreign_keys=ON on SQLite)
                    await conn.execute(delete(traces).where(traces.c.trace_id.in_(ids)))
            total += len(ids)
            if len(ids) < config.batch_size:
                return total
            await asyncio.sleep(config.pause)  # let the writer and readers in

    # -- the background job -----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="opsgate-retention")

    async def _loop(self) -> None:
        await asyncio.sleep(FIRST_PASS_DELAY)
        while True:
            config = self._config()
            if config.enabled and config.active:
                try:
                    report = await self.run_once()
                    if report.traces_deleted or report.bodies_cleared or any(report.swept.values()):
                        log.info("retention pass: %s", report)
                except Exception as exc:  # a database outage: try again next interval
                    log.warning(
                        "retention pass failed, retrying in %.0fs: %s", config.interval, exc
                    )
            await asyncio.sleep(config.interval)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
