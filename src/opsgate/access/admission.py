"""The process-wide state behind the Admit stage: rate-limit counters, the budget ledger, the
alert channel and the seeder that rebuilds spend from the database.

It outlives config reloads (counters must not reset when a file changes); each runtime gets a
fresh `Admit` stage over it, priced against that runtime's router.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.budgets.memory import MemoryBudgetLedger
from opsgate.access.budgets.model import BudgetLedger, BudgetScope
from opsgate.access.budgets.redis import RedisBudgetLedger
from opsgate.access.budgets.seed import BudgetSeeder, StoreSpendLoader
from opsgate.access.limits.leases import LeaseKeeper
from opsgate.access.limits.memory import MemoryRateLimiter
from opsgate.access.limits.model import RateLimiter, ScopeRef
from opsgate.access.limits.redis import RedisRateLimiter
from opsgate.access.principal import BudgetPolicy
from opsgate.access.store import AccessStore
from opsgate.alerts.channel import AlertService, RetryPolicy
from opsgate.alerts.sql import SqlAlertEventStore
from opsgate.alerts.webhook import WebhookSink
from opsgate.config.schema import Config
from opsgate.store.sql import SqlTraceStore

log = logging.getLogger("opsgate.access")


class AdmissionService:
    def __init__(self, config: Config, engine: AsyncEngine) -> None:
        limits, settings = config.limits, config.settings
        use_redis = limits.backend == "redis" or (
            limits.backend == "auto" and settings.redis_url is not None
        )
        if use_redis and settings.redis_url is None:
            raise ValueError("limits.backend is redis but settings.redis_url is not set")
        self.limits = limits
        self.redis: Redis | None = None
        self._keeper: LeaseKeeper | None = None
        self.limiter: RateLimiter
        self.ledger: BudgetLedger
        if use_redis and settings.redis_url is not None:
            self.redis = Redis.from_url(settings.redis_url)
            self._keeper = LeaseKeeper(self.redis, ttl=limits.lease_ttl)
            self.limiter = RedisRateLimiter(
                self.redis, prefix=limits.redis_prefix, keeper=self._keeper
            )
            self.ledger = RedisBudgetLedger(
                self.redis, prefix=limits.redis_prefix, keeper=self._keeper
            )
        else:
            self.limiter, self.ledger = MemoryRateLimiter(), MemoryBudgetLedger()
        self.alert_events = SqlAlertEventStore(engine)
        a = config.alerts
        self.sinks = [
            WebhookSink(
                w.url,
                secret=w.secret.get_secret_value() if w.secret else None,
                format=w.format,
                timeout=w.timeout,
            )
            for w in a.webhooks
        ]
        self.alerts = AlertService(
            self.sinks,
            self.alert_events,
            queue_size=a.queue_size,
            retry=RetryPolicy(a.retry_attempts, a.retry_base, a.retry_max),
        )
        self.ledger.on_alert = self.alerts.emit
        self.seeder = BudgetSeeder(self.ledger, StoreSpendLoader(SqlTraceStore(engine)))

    async def start(self, access: AccessStore | None = None) -> None:
        """Start alerts, then seed budget counters from the database (bounded, best effort):
        `access` names the budgets attached within their current period, which count from
        that moment and have counters of their own."""
        self.alerts.start()
        try:
            async with asyncio.timeout(10):
                budgets, end_users = await attached_budgets(access) if access else ([], {})
                await self.seeder.warm(budgets=budgets, end_users=end_users)
        except Exception as exc:
            log.warning("budget counters not seeded from the database yet: %s", exc)
        self.seeder.start()

    async def aclose(self) -> None:
        await self.seeder.aclose()
        await self.alerts.aclose()
        for sink in self.sinks:
            await sink.aclose()
        await self.limiter.aclose()
        await self.ledger.aclose()
        if self.redis is not None:
            await self.redis.aclose()


async def attached_budgets(
    access: AccessStore,
) -> tuple[list[BudgetScope], dict[str, BudgetPolicy]]:
    """Every key and team budget, and the end-user budget of each key (by key id)."""
    keys, teams = await access.list_keys({}), await access.list_teams()
    scopes = [BudgetScope(ScopeRef("key", k.id), k.scope.budget) for k in keys if k.scope.budget]
    scopes += [BudgetScope(ScopeRef("team", t.id), t.scope.budget) for t in teams if t.scope.budget]
    return scopes, {k.id: k.end_user.budget for k in keys if k.end_user.budget is not None}
