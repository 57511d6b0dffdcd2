"""Building the drift service from config: the embedder it samples with, where proposals
create datasets, and where dataset references are read."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.principal import MASTER, Principal
from opsgate.alerts import Alert
from opsgate.audit import AuditLog
from opsgate.cache.embed import EmbedCall, Embedder, build_embedder
from opsgate.config.cache import EmbedderConfig
from opsgate.config.schema import Config
from opsgate.drift.features import last_user_text
from opsgate.drift.proposals import EvalRequest, StartEval
from opsgate.drift.sampler import DriftSampler
from opsgate.drift.service import DriftService
from opsgate.drift.store import DriftStore
from opsgate.evals.runs import EvalSpec
from opsgate.evals.service import EvalService
from opsgate.feedback.datasets.requests import DatasetCreate
from opsgate.feedback.datasets.service import DatasetService
from opsgate.telemetry.drift_metrics import DriftMetrics

READER = "drift"
"""The actor a dataset reference's rows are read as (audited)."""


def drift_embedder(config: Config) -> EmbedderConfig:
    """`drift.embedder`, else the semantic cache's when it is on, else local MiniLM."""
    if config.drift.embedder is not None:
        return config.drift.embedder
    if config.cache.semantic.enabled:
        return config.cache.semantic.embedder
    return EmbedderConfig(type="local")


def build_drift(
    config: Callable[[], Config],
    engine: AsyncEngine,
    *,
    audit: AuditLog,
    datasets: DatasetService | None,
    evals: EvalService | None = None,
    embed_call: EmbedCall | None = None,
    emit: Callable[[Alert], bool] | None = None,
    metrics: DriftMetrics | None = None,
) -> DriftService:
    store = DriftStore(engine)

    def embedder() -> Embedder:
        return build_embedder(drift_embedder(config()), embed_call)

    async def create_dataset(who: Principal, name: str, ids: list[str], actor: str) -> str:
        if datasets is None:
            raise RuntimeError("no dataset service")
        done = await datasets.create(who, DatasetCreate(name=name, trace_ids=ids), actor)
        return done.dataset.id

    async def dataset_texts(ref: str, limit: int) -> list[str]:
        if datasets is None:
            return []
        _, _, rows = await datasets.rows(
            MASTER, ref, version=None, after=None, limit=limit, content=True, actor=READER
        )
        texts = [last_user_text({"messages": c.messages}) for _, c in rows if c is not None]
        return [t for t in texts if t]

    sampler = DriftSampler(lambda: config().drift, store, embedder, metrics=metrics)
    return DriftService(
        lambda: config().drift,
        store,
        sampler,
        emit=emit,
        metrics=metrics,
        audit=audit,
        create_dataset=create_dataset if datasets is not None else None,
        dataset_texts=dataset_texts if datasets is not None else None,
        start_eval=eval_starter(evals) if evals is not None else None,
    )


def eval_starter(evals: EvalService) -> StartEval:
    """An accepted `eval_run` proposal's run, started exactly as `POST /admin/v1/evals` starts
    one: the stored dataset read as `who` (audited), the calls made with their key."""

    async def start(who: Principal, req: EvalRequest) -> str:
        spec = EvalSpec.model_validate(
            {
                "name": req.name,
                "dataset": {"name": req.dataset_id},
                "targets": [{"model": req.model}],
                "scorers": req.scorers,
            }
        )
        creds = req.credentials
        run = await evals.start(spec, who, creds.key, creds.base_url, req.actor)
        return run.id

    return start
