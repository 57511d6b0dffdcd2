"""Distillation: a teacher model's answers train a small student, then the two are compared.

`DistillService.start` checks everything it can at once (the teacher is a model the gateway
serves, else 404; the dataset version and enough inputs in it, else 404/400; the student's base
folder; the adapter and dataset names free, else 409; the scorers) and reads the inputs; the
rest runs in the background, one stage after the other, each written to the record:

1. `teacher`: the teacher answers every input through the gateway with the caller's key
   (`distill_teacher`); answers to training inputs that pass the filters are kept.
2. `dataset`: the kept pairs become a new dataset (`into`), its description the provenance.
3. `training`: a tuning job trains the student's LoRA adapter on it (`TuningService.create`:
   the same checks, worker and registry as any job), and the run waits for it.
4. `comparing`: the student (and its untrained base) answer the held-out inputs in a worker
   process; quality, cost per 1k requests and latency against the teacher
   (`distill_compare`), stored on the record and in the job's and adapter's metrics.

A failure at any stage ends the run `failed` with the reason; teacher calls that failed are
counted and their first reasons kept. At shutdown a run in progress ends `failed`
(interrupted); its finished stages (dataset, job) stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import is_global, owning_team
from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.config.tuning import TuningConfig
from opsgate.errors import BadRequestError, NotFoundError, OpsgateError
from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.runs import DatasetReader, StoredDataset
from opsgate.evals.scorers import Scorer, ScorerResources, build_scorer
from opsgate.feedback.datasets.requests import DatasetCreate, RowSources
from opsgate.feedback.datasets.service import READ_ROWS, DatasetService
from opsgate.store.crypto import BodyCipher
from opsgate.store.tables.tuning import tuning_adapters
from opsgate.tuning.base import BaseModelError, base_fingerprint
from opsgate.tuning.distill_compare import compare, student_answers
from opsgate.tuning.distill_records import DistillRecords
from opsgate.tuning.distill_requests import DistillCreate
from opsgate.tuning.distill_teacher import Input, Teacher, TeacherResult, read_inputs, training_rows
from opsgate.tuning.requests import JobCreate
from opsgate.tuning.service import TuningService

log = logging.getLogger("opsgate.tuning")
ACTOR = "tuning"
MIN_TRAIN = 4
"""Training inputs a distillation needs (a tuning job needs 4 examples to train and validate)."""
CHUNK = 1000
"""Rows per dataset change (the inline limit): more kept pairs take more versions."""
FINAL = ("succeeded", "failed", "cancelled")


class _Failed(Exception):
    """A stage cannot go on; the message is the record's error."""


class DistillService:
    def __init__(
        self,
        tuning: TuningService,
        datasets: DatasetService | None,
        engine: AsyncEngine,
        audit: AuditLog,
        config: Callable[[], TuningConfig],
        *,
        cipher: Callable[[], BodyCipher | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tuning, self._datasets, self._engine = tuning, datasets, engine
        self._audit, self._config, self._cipher, self._clock = audit, config, cipher, clock
        self.records = DistillRecords(lambda: config().folder)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # --- reading -----------------------------------------------------------------------------

    @staticmethod
    def _owners(who: Principal) -> list[str] | None:
        if is_global(who):
            return None
        return [who.team_id] if who.team_id else []

    async def get(self, who: Principal, record_id: str) -> dict[str, Any]:
        found = await self.records.get(record_id)
        owners = self._owners(who)
        if found is None or (owners is not None and (found.get("team_id") or "") not in owners):
            raise NotFoundError(f"no distillation {record_id!r}", code="distillation_not_found")
        return found

    async def listed(self, who: Principal, limit: int = 100) -> list[dict[str, Any]]:
        return await self.records.all(self._owners(who), limit)

    # --- starting ----------------------------------------------------------------------------

    async def start(
        self, who: Principal, req: DistillCreate, key: str, base_url: str, actor: str
    ) -> dict[str, Any]:
        """Check, read the inputs, write the record and start the run in the background.
        The teacher must already be known to exist (the API checks it against the router)."""
        team = owning_team(who, req.team_id, "distillations")
        datasets = self._datasets
        if datasets is None:
            raise BadRequestError("datasets are not available on this gateway")
        await self._check_names(who, req, datasets)
        await asyncio.to_thread(self._check_base, req.student)
        client = GatewayClient(base_url, key, ClientOptions(concurrency=req.concurrency))
        try:
            resources = ScorerResources(client=client, judge_model=req.teacher)
            filters = _scorers(req.filters, resources, "filters")
            scorers = _scorers(req.scorers, resources, "scorers")
            source, inputs = await self._inputs(who, req, datasets, actor)
        except BaseException:
            await client.aclose()
            raise
        record = self._new_record(who, req, team, actor, source, inputs)
        await self.records.put(record)
        detail = {"dataset": source.info.id, "version": source.version, "teacher": req.teacher}
        await self._audit.append(actor, "tuning.distill.create", f"distill:{record['id']}", detail)
        run = _Run(self, who, req, record, actor, client, filters, scorers, inputs)
        task = asyncio.create_task(run.execute(), name=f"distill {record['id']}")
        self._tasks[record["id"]] = task
        task.add_done_callback(lambda _: self._tasks.pop(record["id"], None))
        return record

    async def _check_names(self, who: Principal, req: DistillCreate, ds: DatasetService) -> None:
        if await self.tuning.store.adapter_taken(req.adapter):
            raise ConflictError(
                f"an adapter named {req.adapter!r} exists or is being trained",
                code="adapter_exists",
                param="adapter",
            )
        with contextlib.suppress(NotFoundError):
            await ds.resolve(who, req.dataset_name)
            raise ConflictError(
                f"a dataset named {req.dataset_name!r} exists; name another with `into`",
                code="dataset_exists",
                param="into",
            )

    def _check_base(self, raw: str) -> None:
        base = Path(raw).expanduser().resolve()
        allowed = [Path(p).expanduser().resolve() for p in self._config().bases]
        if allowed and not any(base.is_relative_to(a) for a in allowed):
            raise BadRequestError(
                f"student {raw!r} is not under an allowed folder (tuning.bases)",
                code="base_not_allowed",
                param="student",
            )
        try:
            base_fingerprint(base)
        except BaseModelError as exc:
            raise BadRequestError(str(exc), code="invalid_base", param="student") from None

    async def _inputs(
        self, who: Principal, req: DistillCreate, ds: DatasetService, actor: str
    ) -> tuple[StoredDataset, list[Input]]:
        info = await ds.resolve(who, req.dataset)
        version = ds.version_of(info, req.dataset_version)
        detail = {"version": version, "distill": req.adapter}
        await self._audit.append(actor, READ_ROWS, f"dataset:{info.id}", detail)
        reader = DatasetReader(ds.store, self._cipher(), lambda ref: ds.resolve(who, ref))
        source = StoredDataset(reader, info, version, None)
        inputs = await read_inputs(source, req.held_out, req.max_inputs)
        train = sum(not i.held_out for i in inputs)
        if train < MIN_TRAIN or train == len(inputs):
            raise BadRequestError(
                f"dataset {info.name!r} v{version} has {len(inputs)} usable inputs ({train} to "
                f"train on): at least {MIN_TRAIN} to train on and 1 held out are needed",
                code="dataset_too_small",
                param="dataset",
            )
        return source, inputs

    def _new_record(
        self,
        who: Principal,
        req: DistillCreate,
        team: str | None,
        actor: str,
        source: StoredDataset,
        inputs: list[Input],
    ) -> dict[str, Any]:
        now = self._clock()
        held = sum(i.held_out for i in inputs)
        return {
            "id": f"dst_{secrets.token_hex(8)}",
            "object": "tuning.distillation",
            "team_id": team,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
            "status": "running",
            "stage": "teacher",
            "error": None,
            "teacher": req.teacher,
            "student": req.student,
            "adapter": req.adapter,
            "source": {"id": source.info.id, "name": source.info.name, "version": source.version},
            "filters": [_name(f) for f in req.filters],
            "inputs": {"total": len(inputs), "train": len(inputs) - held, "held_out": held},
            "teacher_calls": None,
            "dataset": None,
            "job_id": None,
            "comparison": None,
            "request": req.model_dump(mode="json", exclude={"team_id"}),
        }

    async def aclose(self) -> None:
        """Stop the runs of this process (each ends `failed`: interrupted)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)


def _name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return str(spec.get("name") or spec.get("type"))
    return str(spec)


def _scorers(specs: list[Any], resources: ScorerResources, field: str) -> list[Scorer]:
    built = [build_scorer(s, resources) for s in specs]
    names = [s.name for s in built]
    if len(set(names)) != len(names):
        raise BadRequestError(f"two {field} report the same name: give one a `name`", param=field)
    return built


class _Run:
    """One distillation's background run, stage by stage."""

    def __init__(
        self,
        service: DistillService,
        who: Principal,
        req: DistillCreate,
        record: dict[str, Any],
        actor: str,
        client: GatewayClient,
        filters: list[Scorer],
        scorers: list[Scorer],
        inputs: list[Input],
    ) -> None:
        self.s, self.who, self.req, self.record, self.actor = service, who, req, record, actor
        self.client, self.filters, self.scorers, self.inputs = client, filters, scorers, inputs

    async def _stage(self, stage: str, **values: Any) -> None:
        self.record.update(values, stage=stage, updated_at=self.s._clock())
        await self.s.records.put(self.record)

    async def execute(self) -> None:
        status, error = "succeeded", None
        try:
            answers = await self._teach()
            dataset_id, version = await self._dataset(answers)
            job = await self._train(dataset_id, version)
            await self._compare(answers, job)
        except asyncio.CancelledError:
            status, error = "failed", "interrupted: the gateway shut down"
        except (_Failed, OpsgateError) as exc:
            status, error = "failed", str(exc)
        except Exception as exc:
            log.exception("distillation %s", self.record["id"])
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            await self.client.aclose()
            for scorer in [*self.filters, *self.scorers]:
                with contextlib.suppress(Exception):
                    await scorer.aclose()
        self.record.update(status=status, error=error, finished_at=self.s._clock())
        await self._stage("done" if status == "succeeded" else self.record["stage"])
        detail = {"status": status, "job": self.record["job_id"]}
        await self.s._audit.append(
            ACTOR, "tuning.distill.finish", f"distill:{self.record['id']}", detail
        )

    async def _teach(self) -> TeacherResult:
        teacher = Teacher(self.client, self.req.teacher, self.req.params, self.filters)
        result = await teacher.answer_all(self.inputs)
        await self._stage("teacher", teacher_calls=result.counts())
        if result.budget_exceeded:
            raise _Failed("the gateway refused teacher calls for budget")
        if len(result.kept) < MIN_TRAIN:
            raise _Failed(
                f"{len(result.kept)} teacher answers were kept (of {result.calls - result.failed}"
                f" answered, {result.failed} calls failed): at least {MIN_TRAIN} are needed"
            )
        if not result.held_out:
            raise _Failed("the teacher answered none of the held-out inputs: nothing to compare")
        return result

    async def _dataset(self, answers: TeacherResult) -> tuple[str, int]:
        ds = self.s._datasets
        assert ds is not None
        rows = training_rows(answers.kept)
        counts = answers.counts()
        provenance = (
            f"distilled from {self.req.teacher} on {self.record['source']['name']}"
            f"@{self.record['source']['version']} by {self.record['id']}; filters: "
            f"{', '.join(self.record['filters']) or 'none'}; kept {counts['kept']}, dropped "
            f"{counts['dropped']} {counts['dropped_by']}, failed {counts['train_failed']}"
        )[:2000]
        made = await ds.create(
            self.who,
            DatasetCreate(name=self.req.dataset_name, description=provenance,
                          rows=rows[:CHUNK], team_id=self.req.team_id),
            self.actor,
        )  # fmt: skip
        version = made.version
        for start in range(CHUNK, len(rows), CHUNK):
            more = await ds.add(
                self.who, made.dataset.id, RowSources(rows=rows[start : start + CHUNK]), self.actor
            )
            version = more.version
        info = {"id": made.dataset.id, "name": made.dataset.name, "version": version,
                "rows": len(rows), "provenance": provenance}  # fmt: skip
        await self._stage("dataset", dataset=info)
        return made.dataset.id, version

    async def _train(self, dataset_id: str, version: int) -> dict[str, Any]:
        body = JobCreate(
            dataset=dataset_id,
            dataset_version=version,
            base=self.req.student,
            adapter=self.req.adapter,
            settings=self.req.settings,
            validation=self.req.validation,
            team_id=self.req.team_id,
        )
        job = await self.s.tuning.create(self.who, body, self.actor)
        await self._stage("training", job_id=job["id"])
        while job["status"] not in FINAL:
            await asyncio.sleep(self.s._config().poll)
            found = await self.s.tuning.store.job(job["id"])
            if found is None:
                raise _Failed(f"tuning job {job['id']} is gone")
            job = found
        if job["status"] != "succeeded":
            raise _Failed(f"tuning job {job['id']} {job['status']}: {job.get('error') or ''}")
        return job

    async def _compare(self, answers: TeacherResult, job: dict[str, Any]) -> None:
        await self._stage("comparing")
        adapter = await self.s.tuning.store.adapter(self.req.adapter)
        if adapter is None:
            raise _Failed(f"adapter {self.req.adapter!r} was not registered")
        folder = self.s.records.work(self.record["id"])
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        local = await student_answers(
            folder, job["base"], adapter["path"], answers.held_out,
            max_new_tokens=self.req.max_new_tokens, threads=self.s._config().threads,
        )  # fmt: skip
        table = await compare(
            self.req.teacher, answers.held_out, local, self.scorers,
            adapter=self.req.adapter, student=self.req.student, cpu_hour_usd=self.req.cpu_hour_usd,
        )  # fmt: skip
        self.record["comparison"] = table
        await self._store_metrics(job, adapter, table)

    async def _store_metrics(
        self, job: dict[str, Any], adapter: dict[str, Any], table: dict[str, Any]
    ) -> None:
        """The comparison, without its sample answers, in the job's and adapter's metrics."""
        summary = {"id": self.record["id"], "teacher": self.req.teacher,
                   **{k: v for k, v in table.items() if k != "samples"}}  # fmt: skip
        await self.s.tuning.store.update(
            job["id"], {"metrics": {**job["metrics"], "distillation": summary}}
        )
        metrics = {**adapter["metrics"], "distillation": summary}
        async with self.s._engine.begin() as conn:
            await conn.execute(
                update(tuning_adapters)
                .where(tuning_adapters.c.name == adapter["name"])
                .values(metrics=metrics)
            )
