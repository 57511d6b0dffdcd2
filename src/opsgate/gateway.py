"""The composition root: builds the runtime (router + pipelines) from config, owns the
process-wide parts (HTTP client, metrics, tracer, trace store and writer), and swaps the runtime
atomically on reload. In-flight requests keep the runtime they started with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from opsgate.access.admission import AdmissionService
from opsgate.access.budgets.model import BudgetLedger
from opsgate.access.control import DEFAULT_REDIS_PREFIX, REDIS_PREFIX_ENV, AccessService
from opsgate.access.principal import Principal
from opsgate.alerts.store import AlertEventStore
from opsgate.cache.build import build_cache
from opsgate.cache.embed.gateway import EmbedCall
from opsgate.chat import EmbeddingRequest
from opsgate.compliance.encryption import stores_bodies
from opsgate.compliance.runtime import ComplianceService
from opsgate.config.loader import load_config
from opsgate.config.schema import Config
from opsgate.drift.build import build_drift
from opsgate.drift.holders import DriftRetention, DriftSamples
from opsgate.drift.service import DriftService
from opsgate.evals.online import JUDGE_SOURCE, OnlineEvaluator
from opsgate.evals.service import EvalService
from opsgate.experiments.best_of import JUDGE_SOURCE as BEST_OF_JUDGE
from opsgate.experiments.service import ExperimentService
from opsgate.feedback.datasets.export import export_redactor
from opsgate.feedback.datasets.holder import DatasetRows
from opsgate.feedback.datasets.service import DatasetService
from opsgate.feedback.holders import ScoreData, ScoreRetention
from opsgate.feedback.review.recorder import ScoreRecorder
from opsgate.feedback.review.service import ReviewService
from opsgate.feedback.service import FeedbackService
from opsgate.pipeline.context import (
    RequestContext,
)
from opsgate.pipeline.deferred import Deferred
from opsgate.pipeline.inprocess import PipelineClient
from opsgate.pipeline.publish import TracePublisher
from opsgate.prompts.service import PromptService
from opsgate.providers.adapter_loading import AdapterLoading
from opsgate.providers.transport import HTTPClient
from opsgate.rag.build import KnowledgeData, build_store
from opsgate.rag.grounding import GroundingScorer
from opsgate.rag.service import KnowledgeService
from opsgate.routing.deployment import ModelGroup
from opsgate.routing.router import Router, RouteState
from opsgate.runtime import Runtime, build_runtime
from opsgate.store.build import build_trace_store
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.journal import Journal, JournalLockedError, default_journal_path
from opsgate.store.migrate import upgrade
from opsgate.store.repository import TraceReader
from opsgate.store.writer import TraceWriter
from opsgate.telemetry.loop_lag import LoopLagMonitor
from opsgate.telemetry.metrics import Metrics, create_metrics, mark_process_dead, multiprocess_dir
from opsgate.telemetry.otel import GenAITracer, create_tracer
from opsgate.tuning.build import build_tuning
from opsgate.tuning.distill import DistillService
from opsgate.tuning.rollout import AdapterRollout, promoted_config
from opsgate.tuning.service import TuningService

log = logging.getLogger("opsgate")


class Gateway:
    """Owns the process-wide pieces and the current runtime."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | Path | None = None,
        metrics: Metrics | None = None,
        tracer: GenAITracer | None = None,
    ) -> None:
        self.config_path = config_path
        self.source = str(config_path) if config_path else "<built-in default>"
        self.http = HTTPClient()
        self.metrics = metrics or create_metrics()
        self.loop_lag = LoopLagMonitor(self.metrics.loop_lag.observe)
        self.tracer = tracer or create_tracer(capture_content=config.traces.otel_capture_content)
        self.database_url = config.settings.database_url
        self.writer: TraceWriter | None = None
        self.traces: TraceReader | None = None
        """The stored traces and usage, read by the admin API and the dashboard; None when
        traces are off in the config."""
        self.deferred = Deferred()
        self._engine = make_engine(self.database_url)  # lazy: connects on first use
        self.access = AccessService.from_settings(self._engine, config.settings.redis_url)
        self.admission = AdmissionService(config, self._engine)
        self.cache = build_cache(
            config.cache,
            config.settings.redis_url,
            embed_call=router_embed(lambda: self.runtime.router),
        )
        self._migrate_task: asyncio.Task[None] | None = None
        self.compliance = ComplianceService(
            config,
            self._engine,
            source=self.source,
            retention=lambda: self.runtime.config.retention,
            emit=self.admission.alerts.emit,  # breach alerts: docs/alerts.md
        )
        self.audit = self.compliance.audit  # AuditLog: append(...), verify()
        self.bodies = self.compliance.bodies  # BodyReader: read(record, actor)
        self.subjects = self.compliance.subjects  # DataSubjects: export(end_user), erase(...)
        self.prompts = PromptService.from_settings(
            self._engine, config.settings.redis_url, self.audit
        )
        if config.traces.enabled:
            traces, store = config.traces, build_trace_store(self.database_url, self._engine)
            self.traces = store
            self.writer = TraceWriter(
                store,
                traces.journal_path or default_journal_path(self.database_url),
                capacity=traces.queue_size,
                batch_size=traces.batch_size,
                flush_interval=traces.flush_interval,
                seal=self.compliance.seal,
            )
            self.metrics.watch_writer(self.writer.stats)
        self.compliance.register_builtins(self.writer, self.cache)
        self.feedback = self._feedback(config)
        self.online = self._online(config)
        self.review, self.datasets = self._review_and_datasets()
        self.knowledge, self.grounding = self._knowledge(config)
        self.evals = EvalService(
            self._engine,
            datasets=self.datasets,
            cipher=lambda: self.compliance.cipher,
            audit=self.audit,
        )
        self.drift = self._drift()
        self.tuning = self._tuning()
        self.distill = DistillService(
            self.tuning,
            self.datasets,
            self._engine,
            self.audit,
            lambda: self.runtime.config.tuning,
            cipher=lambda: self.compliance.cipher,
        )
        # Adapters: the registry behind vLLM's run-time loading; direct promotions laid over
        # the config file whenever the router is built (docs/tuning.md "Rolling out").
        self.rollout = AdapterRollout(self._engine, self.tuning.store, self.audit)
        self.rollout.on_change = self._apply_promotions
        self.adapter_loading = AdapterLoading(self.http, self.rollout.weights)
        self.experiments = ExperimentService(
            self._engine,
            lambda: self.runtime.config,
            prompts=self.prompts,
            audit=self.audit,
            emit=self.admission.alerts.emit,
            redis_url=config.settings.redis_url,
            redis_prefix=os.environ.get(REDIS_PREFIX_ENV) or DEFAULT_REDIS_PREFIX,
        )
        self.metrics.watch_circuits(self._circuits)
        self.best_of_judge = PipelineClient(
            lambda: self.runtime.chat, source=BEST_OF_JUDGE, key=self._judge_key
        )
        self._file_config = config
        """The config as read (the runtime's is it with the adapter promotions laid over)."""
        self.runtime = self._build(config, None)
        self._reload_lock = asyncio.Lock()

    def _build(self, config: Config, previous: Runtime | None) -> Runtime:
        """A runtime for `config` with the stored adapter promotions laid over it."""
        return build_runtime(
            promoted_config(config, self.rollout.promotions),
            self.http,
            source=self.source,
            previous=previous,
            publisher=self._publisher(config),
            access=self.access,
            admission=self.admission,
            cache=self.cache,
            prompts=self.prompts,
            feedback=self.feedback,
            experiments=self.experiments,
            knowledge=self.knowledge,
            grounding=self.grounding,
            judge=self.best_of_judge,
            adapters=self.adapter_loading,
        )

    async def _refresh_promotions(self) -> bool:
        """Read the stored adapter promotions; False (and the old ones kept) when the
        database cannot be read."""
        try:
            await self.rollout.refresh()
        except Exception as exc:
            log.warning("adapter promotions not read (%s); the config file's adapters serve", exc)
            return False
        return True

    async def _apply_promotions(self) -> None:
        """Build the router again after a promotion or its removal (from the config as read)."""
        async with self._reload_lock:
            self.runtime = self._build(self._file_config, self.runtime)

    def _feedback(self, config: Config) -> FeedbackService:
        """Scores: their own writer, registered for erasure (after the trace writer's flush)
        and retention like the traces they are about."""
        master = config.settings.master_key
        feedback = FeedbackService(
            config.feedback,
            self._engine,
            master_key=master.get_secret_value() if master else None,
            metrics=self.metrics.feedback,
            tracer=self.tracer,
        )
        self.compliance.subjects.before_erase.append(feedback.writer.flush)
        self.compliance.register(ScoreData(self._engine, feedback.recent), tables=["scores"])
        self.compliance.retention.register(ScoreRetention(self._engine))
        return feedback

    def _online(self, config: Config) -> OnlineEvaluator:
        """Online scoring: judges call the current runtime's chat pipeline in process, as the
        configured judge key (or the gateway itself); scores go to the feedback service."""

        judge = PipelineClient(lambda: self.runtime.chat, source=JUDGE_SOURCE, key=self._judge_key)
        return OnlineEvaluator(
            config.evals,
            config.feedback.metrics,
            self.feedback,
            judge=judge,
            metrics=self.metrics.online,
            source=self.source,
        )

    def _judge_key(self) -> str | None:
        key = self.runtime.config.evals.judge_key
        return key.get_secret_value() if key else None

    def _review_and_datasets(self) -> tuple[ReviewService, DatasetService]:
        """Review queues label into the score store; datasets copy traces and scores into
        rows sealed with the body keys, and are erased with their end users."""
        review = ReviewService(
            self._engine,
            ScoreRecorder(self.feedback, self._engine),
            lambda: self.runtime.config.feedback,
        )
        datasets = DatasetService(
            self._engine,
            self.feedback.store,
            self.audit,
            cipher=lambda: self.compliance.cipher,
            redactor=lambda: export_redactor(self.runtime.guard),
            metrics=lambda: self.runtime.config.feedback.metrics,
            stores_bodies=lambda: stores_bodies(self.runtime.config),
            queues=review.lookup,
        )
        holder = DatasetRows(self._engine, lambda: self.compliance.cipher)
        self.compliance.register(holder, tables=["dataset_rows"])
        return review, datasets

    def _knowledge(self, config: Config) -> tuple[KnowledgeService, GroundingScorer]:
        """Knowledge bases on the gateway's database (SQLite: FTS5 + usearch; PostgreSQL:
        pgvector), erased with the end users they were ingested for; grounding scores go to
        the feedback service."""
        store = build_store(self.database_url, self._engine, config.rag)
        knowledge = KnowledgeService(
            store, config.rag, embed_call=router_embed(lambda: self.runtime.router)
        )
        self.compliance.register(KnowledgeData(store), tables=["rag_documents"])
        return knowledge, GroundingScorer(self.feedback, config.rag.grounding.metric)

    def _drift(self) -> DriftService:
        """Drift: samples taken off the request path (a trace observer), monitors evaluated in
        the background; samples are erased with their end user and expire with retention."""
        drift = build_drift(
            lambda: self.runtime.config,
            self._engine,
            audit=self.audit,
            datasets=self.datasets,
            evals=self.evals,
            embed_call=router_embed(lambda: self.runtime.router),
            emit=self.admission.alerts.emit,
            metrics=self.metrics.drift,
        )
        self.compliance.subjects.before_erase.append(drift.sampler.drain)
        self.compliance.register(DriftSamples(drift.store), tables=["drift_samples"])
        self.compliance.retention.register(DriftRetention(drift.store))
        return drift

    def _tuning(self) -> TuningService:
        """Tuning jobs (trained in worker processes, one at a time) and the adapter registry;
        erasing an end user taints the jobs and adapters trained on their rows."""
        tuning, holder = build_tuning(
            lambda: self.runtime.config.tuning,
            self._engine,
            audit=self.audit,
            datasets=self.datasets,
            models=lambda: self.runtime.config.models,
            http=self.http,
        )
        self.compliance.register(holder, tables=["tuning_subjects"])
        return tuning

    def _publisher(self, config: Config) -> TracePublisher:
        return TracePublisher(
            self.metrics,
            self.tracer,
            self.writer,
            store_bodies=config.traces.store_bodies != "off",
            deferred=self.deferred,
            observers=[self.feedback.observe, self.drift.sampler.observe],
            online=self.online,
        )

    def _circuits(self) -> dict[str, str]:
        groups = self.runtime.router.groups.values()
        return {d.id: d.health.circuit.state.value for g in groups for d in g.deployments}

    async def start(self) -> None:
        """Migrate the database and start the trace writer. A database that is down does not
        stop the gateway: traces go to the journal and migrations are retried."""
        try:
            await upgrade(self.database_url)
        except Exception as exc:
            log.warning("database migration failed (%s); will retry in the background", exc)
            self._migrate_task = asyncio.create_task(self._migrate_later())
        await self.access.start()
        await self.prompts.start()
        await self.experiments.start()
        if await self._refresh_promotions() and self.rollout.promotions:
            await self._apply_promotions()
        await self.admission.start(self.access.store)
        self.compliance.start()
        if self.writer is not None:
            await self._start_writer(self.writer)
        # Scores left unwritten by the last run sit beside this process's own trace journal.
        journal = self.writer.journal.path if self.writer is not None else None
        await self.feedback.start(journal.with_name(journal.name + ".scores") if journal else None)
        await self.online.start()
        await self.knowledge.start()
        await self.drift.start()
        self.tuning.runner.start()
        self.loop_lag.start()

    @staticmethod
    async def _start_writer(writer: TraceWriter) -> None:
        """Each process needs a journal of its own (it is locked): with several workers on one
        path, worker k takes `<journal>.k`. A restart finds the same slots and replays them."""
        base = writer.journal.path
        for slot in range(1, 257):
            try:
                await writer.start()
                return
            except JournalLockedError:
                writer.journal = Journal(base.with_name(f"{base.name}.{slot}"))
        raise RuntimeError(f"no free trace journal slot next to {base}")

    async def _migrate_later(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await upgrade(self.database_url)
            except Exception as exc:
                log.warning("database migration still failing: %s", exc)
                delay = min(delay * 2, 30.0)
            else:
                log.info("database migrated")
                return

    async def reload(self) -> Runtime:
        """Validate the config file again and swap it in; on any error the old one stays."""
        async with self._reload_lock:
            config = await asyncio.to_thread(load_config, self.config_path)
            self.online.reload(config.evals, config.feedback.metrics, self.source)
            self.compliance.reload(config, self.source)
            self.feedback.reload(config.feedback)
            self.knowledge.reload(config.rag)
            await self._refresh_promotions()
            runtime = self._build(config, self.runtime)
            self._file_config, self.runtime = config, runtime
            await self.experiments.reload()
            log.info("config reloaded from %s", self.source)
            return runtime

    async def aclose(self) -> None:
        """Graceful shutdown: drain the trace queue, then release connections."""
        await self.loop_lag.aclose()
        await self.online.aclose()  # its judges still have a whole pipeline to call
        if self._migrate_task is not None:
            self._migrate_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._migrate_task
        if self.runtime.admit is not None:
            await self.runtime.admit.aclose()
        await self.admission.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await self.grounding.aclose()  # its last scores reach the feedback writer
        await self.knowledge.aclose()
        await self.compliance.aclose()
        await self.deferred.drain()  # traces still being masked reach the writer first
        await self.drift.aclose()  # after the drain: the last traces' samples are written
        await self.evals.aclose()  # runs stop (cancelled, resumable) while the API is up
        await self.distill.aclose()  # a run in progress ends failed (interrupted)
        await self.tuning.runner.aclose()  # a running job is queued again at its checkpoint
        await self.feedback.aclose()
        if self.writer is not None:
            await self.writer.stop()
            await self.writer.store.aclose()
        await self.access.aclose()
        await self.experiments.aclose()
        await self.prompts.aclose()
        if self._engine is not None:
            await dispose_engine(self._engine)
        self.tracer.shutdown()
        await self.http.aclose()
        if multiprocess_dir():
            mark_process_dead(os.getpid())

    # --- what the HTTP surfaces read (api/, ui/), named so that they do not reach through parts

    @property
    def model_groups(self) -> Mapping[str, ModelGroup]:
        """The model groups of the current runtime, by public name (a reload swaps them)."""
        return self.runtime.router.groups

    @property
    def master_key(self) -> str | None:
        """The configured master key, or None (callers on this machine are then trusted)."""
        master = self.runtime.config.settings.master_key
        return master.get_secret_value() if master else None

    async def authenticate(self, headers: Mapping[str, str], *, trusted: bool = False) -> Principal:
        """The caller that request headers (lower-cased names) present, exactly as the API's
        authentication stage finds it; AuthenticationError (401) saying why not. `trusted`: a
        key-less caller is the open-laptop admin."""
        return await self.runtime.auth.resolve(RequestContext(headers=headers), trusted=trusted)

    @property
    def ledger(self) -> BudgetLedger:
        """The budget ledger (spend and holds per budget, shared by replicas over Redis)."""
        return self.admission.ledger

    @property
    def alert_events(self) -> AlertEventStore:
        """The stored alert events."""
        return self.admission.alert_events


def router_embed(router: Callable[[], Router]) -> EmbedCall:
    """An `EmbedCall` over the gateway's router (`router()` returns the current one). The call
    is routed (retries, fallbacks) but not traced or billed as a request of its own."""

    async def call(model: str, texts: Sequence[str]) -> list[list[float]]:
        body = await router().embed(
            EmbeddingRequest(model=model, input=list(texts)), RouteState(trace_id="cache-embed")
        )
        data = sorted(body.get("data") or (), key=lambda d: d.get("index", 0))
        return [list(map(float, d["embedding"])) for d in data]

    return call
