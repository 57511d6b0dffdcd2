"""Building the tuning service from config: its store, the job runner, the GDPR holder."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.audit import AuditLog
from opsgate.config.tuning import TuningConfig
from opsgate.feedback.datasets.service import DatasetService
from opsgate.tuning.holders import TrainedOn
from opsgate.tuning.runner import JobRunner
from opsgate.tuning.service import TuningService
from opsgate.tuning.store import TuningStore


def build_tuning(
    config: Callable[[], TuningConfig],
    engine: AsyncEngine,
    *,
    audit: AuditLog,
    datasets: DatasetService | None,
) -> tuple[TuningService, TrainedOn]:
    store = TuningStore(engine)
    runner = JobRunner(store, config, audit)
    return TuningService(store, runner, datasets, audit, config), TrainedOn(store, config)
