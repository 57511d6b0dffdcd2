"""Drift samples as personal data and under retention.

A sample names its trace's end user, and its embedding is derived from their prompt:
`DriftSamples` registers with the GDPR registry (export lists the samples without the
vectors, erasure deletes them), and `DriftRetention` deletes samples older than the
`retention:` policy's `traces_days` for their key, team or the default, like the traces.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opsgate.compliance.retention import DAY, rules
from opsgate.config.compliance import RetentionConfig
from opsgate.drift.store import DriftStore
from opsgate.store.tables.drift import drift_samples


class DriftSamples:
    """The GDPR holder for drift samples (`PersonalData`)."""

    name = "drift_samples"

    def __init__(self, store: DriftStore) -> None:
        self._store = store

    async def export(self, end_user: str) -> list[dict[str, Any]]:
        return await self._store.export(end_user)

    async def erase(self, end_user: str) -> dict[str, int]:
        return {"drift_samples": await self._store.erase(end_user)}


class DriftRetention:
    """The retention sweep for drift samples (`compliance.retention.Sweep`)."""

    name = "drift_samples"

    def __init__(self, store: DriftStore) -> None:
        self._store = store

    async def sweep(self, config: RetentionConfig, now: float) -> int:
        total = 0
        for rule in rules(config, "traces_days", drift_samples):
            where = [*rule.where, drift_samples.c.created_at < now - rule.days * DAY]
            while True:
                n = await self._store.delete_samples(where, config.batch_size)
                total += n
                if n < config.batch_size:
                    break
                await asyncio.sleep(config.pause)
        return total
