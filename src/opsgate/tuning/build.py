"""Building the tuning service from config: its store, the job runner (and its hosted
trainer), the GDPR holder."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.audit import AuditLog
from opsgate.config.schema import ModelGroupConfig
from opsgate.config.tuning import TuningConfig
from opsgate.feedback.datasets.service import DatasetService
from opsgate.providers.transport import HTTPClient
from opsgate.tuning.holders import TrainedOn
from opsgate.tuning.hosted import HostedTrainer
from opsgate.tuning.runner import JobRunner
from opsgate.tuning.service import TuningService
from opsgate.tuning.store import TuningStore


def build_tuning(
    config: Callable[[], TuningConfig],
    engine: AsyncEngine,
    *,
    audit: AuditLog,
    datasets: DatasetService | None,
    models: Callable[[], list[ModelGroupConfig]] = list,
    http: HTTPClient | None = None,
) -> tuple[TuningService, TrainedOn]:
    """`models` and `http`: the configured deployments and the shared client that
    provider-hosted jobs (`method: openai`) use."""
    store = TuningStore(engine)
    hosted = HostedTrainer(store, config, models, http or HTTPClient(), audit)
    runner = JobRunner(store, config, audit, hosted=hosted)
    return TuningService(store, runner, datasets, audit, config), TrainedOn(store, config)
