"""`EvalService`: eval runs started through the admin API, run in the gateway process.

A run's target and judge calls go through the gateway's own OpenAI-compatible API on the
listener the request came in on, with the caller's own key (kept in memory for the run, never
stored): they are authenticated, routed, traced, costed and budgeted exactly like the caller's
traffic, and a run cannot reach what the caller's key cannot. Rows come inline and are stored
with the run's spec, so a run resumes after a cancel or a restart (`resume` needs the key
again, from whoever resumes it); or the run reads a stored dataset (`dataset: {name, version}`)
the caller may see, its version pinned in the stored spec, the read audited like any read of
dataset rows. A cancel reaches a run on another replica through the stored status, which
runners check after each batch of results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.runs import (
    Comparison,
    DatasetReader,
    DatasetSource,
    EvalRunner,
    EvalSpec,
    EvalSpecError,
    EvalStore,
    RunInfo,
    compare,
    open_dataset,
    open_stored,
    pinned,
)
from opsgate.evals.runs.record import FeedbackSink
from opsgate.evals.scorers import Scorer, ScorerResources, build_scorer
from opsgate.feedback.datasets.service import READ_ROWS, DatasetService
from opsgate.store.crypto import BodyCipher

log = logging.getLogger("opsgate.evals")
STOP_WAIT_S = 10.0


@dataclass(slots=True)
class _Running:
    runner: EvalRunner
    task: asyncio.Task[None]


class EvalService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        datasets: DatasetService | None = None,
        cipher: Callable[[], BodyCipher | None] = lambda: None,
        audit: AuditLog | None = None,
    ) -> None:
        self.store = EvalStore(engine)
        self.datasets = datasets
        self._cipher = cipher
        self._audit = audit
        self._running: dict[str, _Running] = {}

    def running(self, run_id: str) -> bool:
        return run_id in self._running

    async def start(
        self, spec: EvalSpec, who: Principal, key: str, base_url: str, actor: str = "api"
    ) -> RunInfo:
        """Check the spec (400: a file dataset, an unknown scorer), store the run, start it."""
        runner, scorers = await self._runner(spec, who, key, base_url, actor)
        owner = "master" if who.is_master else who.key_id
        run = await runner.create(owner=owner, team_id=who.team_id, user_id=who.user_id)
        self._launch(run, runner, scorers)
        return run

    async def resume(
        self,
        run: RunInfo,
        spec: EvalSpec,
        who: Principal,
        key: str,
        base_url: str,
        actor: str = "api",
    ) -> RunInfo:
        runner, scorers = await self._runner(spec, who, key, base_url, actor)
        await self.store.set_status(run.id, "running")
        self._launch(run, runner, scorers)
        found = await self.store.get(run.id)
        assert found is not None
        return found

    async def _runner(
        self, spec: EvalSpec, who: Principal, key: str, base_url: str, actor: str
    ) -> tuple[EvalRunner, list[Scorer]]:
        client = GatewayClient(base_url, key, ClientOptions(concurrency=spec.concurrency))
        resources = ScorerResources(client=client, judge_model=spec.judge_model)
        scorers = [build_scorer(s, resources) for s in spec.scorers]
        dataset: DatasetSource
        if spec.dataset.name is not None:
            stored = await open_stored(spec.dataset, self._reader(who))
            spec = spec.model_copy(update={"dataset": pinned(spec.dataset, stored)})
            if self._audit is not None:
                detail = {"version": stored.version, "eval": spec.name}
                await self._audit.append(actor, READ_ROWS, f"dataset:{stored.info.id}", detail)
            dataset = stored
        else:
            dataset = open_dataset(spec.dataset, files=False)
        sink = FeedbackSink(client, spec.record_scores) if spec.record_scores else None
        runner = EvalRunner(spec, dataset, scorers, client, self.store, sink=sink)
        return runner, scorers

    def _reader(self, who: Principal) -> DatasetReader:
        datasets = self.datasets
        if datasets is None:
            raise EvalSpecError("stored datasets are not available on this gateway")
        return DatasetReader(datasets.store, self._cipher(), lambda ref: datasets.resolve(who, ref))

    def _launch(self, run: RunInfo, runner: EvalRunner, scorers: list[Scorer]) -> None:
        task = asyncio.create_task(self._execute(run, runner, scorers), name=f"eval {run.id}")
        self._running[run.id] = _Running(runner, task)

    async def _execute(self, run: RunInfo, runner: EvalRunner, scorers: list[Scorer]) -> None:
        try:
            await runner.run(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store or the dataset failed: say so on the run
            log.exception("eval run %s failed", run.id)
            with contextlib.suppress(Exception):
                await self.store.set_status(run.id, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._running.pop(run.id, None)
            for scorer in scorers:
                with contextlib.suppress(Exception):
                    await scorer.aclose()
            await runner.client.aclose()

    async def cancel(self, run: RunInfo) -> RunInfo:
        """Stop a running run (here or on another replica); its results so far are kept."""
        here = self._running.get(run.id)
        if here is not None:
            here.runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(here.task), STOP_WAIT_S)
        elif run.status == "running":
            await self.store.set_status(run.id, "cancelled")
        found = await self.store.get(run.id)
        assert found is not None
        return found

    async def runs(self, scope: Mapping[str, str], limit: int) -> list[RunInfo]:
        return await self.store.runs(scope, limit)

    async def get(self, run_id: str) -> RunInfo | None:
        return await self.store.get(run_id)

    async def compare(self, base: str, run_id: str) -> list[Comparison]:
        return await compare(self.store, base, run_id)

    async def aclose(self) -> None:
        """Stop every run of this process (status `cancelled`, resumable)."""
        for item in list(self._running.values()):
            item.runner.cancel()
        tasks = [item.task for item in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        for task in tasks:
            task.cancel()
