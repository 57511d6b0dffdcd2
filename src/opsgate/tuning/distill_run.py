"""One distillation's background run, stage by stage, each stage written to its record:
`inputs` (only for seed topics: the teacher writes them), `teacher`, `dataset`, `training`,
`comparing`, then `done`; or `failed` at the stage that could not go on, with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.config.tuning import TuningConfig
from opsgate.errors import OpsgateError
from opsgate.evals.client import GatewayClient
from opsgate.evals.scorers import Scorer
from opsgate.feedback.datasets.requests import DatasetCreate, RowSources
from opsgate.feedback.datasets.service import DatasetService
from opsgate.store.tables.tuning import tuning_adapters
from opsgate.tuning.distill_compare import compare, student_answers
from opsgate.tuning.distill_records import DistillRecords
from opsgate.tuning.distill_requests import DistillCreate
from opsgate.tuning.distill_teacher import Input, Teacher, TeacherResult, training_rows
from opsgate.tuning.requests import JobCreate
from opsgate.tuning.service import TuningService

log = logging.getLogger("opsgate.tuning")
ACTOR = "tuning"
"""The actor of a run's own audit entry (`tuning.distill.finish`)."""
MIN_TRAIN = 4
"""Training inputs a distillation needs (a tuning job needs 4 examples to train and validate)."""
CHUNK = 1000
"""Rows per dataset change (the inline limit): more kept pairs take more versions."""
FINAL = ("succeeded", "failed", "cancelled")


class StageFailed(Exception):
    """A stage cannot go on; the message is the record's error."""


@dataclass(slots=True)
class RunParts:
    """What runs share: the services they call and where records go."""

    tuning: TuningService
    datasets: DatasetService
    engine: AsyncEngine
    audit: AuditLog
    config: Callable[[], TuningConfig]
    records: DistillRecords
    clock: Callable[[], float] = time.time


@dataclass(slots=True)
class DistillRun:
    parts: RunParts
    who: Principal
    req: DistillCreate
    record: dict[str, Any]
    actor: str
    client: GatewayClient
    filters: list[Scorer]
    scorers: list[Scorer]
    inputs: list[Input] | None
    """None: the teacher writes them from the request's topics first."""
    teacher: Teacher = field(init=False)

    def __post_init__(self) -> None:
        self.teacher = Teacher(self.client, self.req.teacher, self.req.params, self.filters)

    async def _stage(self, stage: str, **values: Any) -> None:
        self.record.update(values, stage=stage, updated_at=self.parts.clock())
        await self.parts.records.put(self.record)

    async def execute(self) -> None:
        status, error = "succeeded", None
        try:
            inputs = self.inputs if self.inputs is not None else await self._write_inputs()
            answers = await self._teach(inputs)
            dataset_id, version = await self._dataset(answers)
            job = await self._train(dataset_id, version)
            await self._compare(answers, job)
        except asyncio.CancelledError:
            status, error = "failed", "interrupted: the gateway shut down"
        except (StageFailed, OpsgateError) as exc:
            status, error = "failed", str(exc)
        except Exception as exc:
            log.exception("distillation %s", self.record["id"])
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            await self.client.aclose()
            for scorer in [*self.filters, *self.scorers]:
                with contextlib.suppress(Exception):
                    await scorer.aclose()
        self.record.update(status=status, error=error, finished_at=self.parts.clock())
        await self._stage("done" if status == "succeeded" else self.record["stage"])
        detail = {"status": status, "job": self.record["job_id"]}
        target = f"distill:{self.record['id']}"
        await self.parts.audit.append(ACTOR, "tuning.distill.finish", target, detail)

    async def _write_inputs(self) -> list[Input]:
        assert self.req.topics is not None
        inputs, errors = await self.teacher.inputs(
            self.req.topics, self.req.per_topic, self.req.held_out
        )
        held = sum(i.held_out for i in inputs)
        counts = {"total": len(inputs), "train": len(inputs) - held, "held_out": held}
        await self._stage("inputs", inputs={**counts, "errors": errors})
        if counts["train"] < MIN_TRAIN or not held:
            raise StageFailed(
                f"the teacher wrote {len(inputs)} usable inputs ({counts['train']} to train on, "
                f"{len(errors)} of {len(self.req.topics)} calls failed): at least {MIN_TRAIN} "
                "to train on and 1 held out are needed"
            )
        return inputs

    async def _teach(self, inputs: list[Input]) -> TeacherResult:
        await self._stage("teacher")
        result = await self.teacher.answer_all(inputs)
        await self._stage("teacher", teacher_calls=result.counts())
        if result.budget_exceeded:
            raise StageFailed("the gateway refused teacher calls for budget")
        if len(result.kept) < MIN_TRAIN:
            raise StageFailed(
                f"{len(result.kept)} teacher answers were kept (of {result.calls - result.failed}"
                f" answered, {result.failed} calls failed): at least {MIN_TRAIN} are needed"
            )
        if not result.held_out:
            raise StageFailed(
                "the teacher answered none of the held-out inputs: nothing to compare"
            )
        return result

    def _provenance(self, answers: TeacherResult) -> str:
        source = self.record["source"]
        where = (
            f"{source['name']}@{source['version']}"
            if "name" in source
            else f"{len(source['topics'])} seed topics"
        )
        counts = answers.counts()
        return (
            f"distilled from {self.req.teacher} on {where} by {self.record['id']}; filters: "
            f"{', '.join(self.record['filters']) or 'none'}; kept {counts['kept']}, dropped "
            f"{counts['dropped']} {counts['dropped_by']}, failed {counts['train_failed']}"
        )[:2000]

    async def _dataset(self, answers: TeacherResult) -> tuple[str, int]:
        ds, rows = self.parts.datasets, training_rows(answers.kept)
        provenance = self._provenance(answers)
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
        job = await self.parts.tuning.create(self.who, body, self.actor)
        await self._stage("training", job_id=job["id"])
        while job["status"] not in FINAL:
            await asyncio.sleep(self.parts.config().poll)
            found = await self.parts.tuning.store.job(job["id"])
            if found is None:
                raise StageFailed(f"tuning job {job['id']} is gone")
            job = found
        if job["status"] != "succeeded":
            raise StageFailed(f"tuning job {job['id']} {job['status']}: {job.get('error') or ''}")
        return job

    async def _compare(self, answers: TeacherResult, job: dict[str, Any]) -> None:
        await self._stage("comparing")
        adapter = await self.parts.tuning.store.adapter(self.req.adapter)
        if adapter is None:
            raise StageFailed(f"adapter {self.req.adapter!r} was not registered")
        folder = self.parts.records.work(self.record["id"])
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        try:
            local = await student_answers(
                folder, job["base"], adapter["path"], answers.held_out,
                max_new_tokens=self.req.max_new_tokens, threads=self.parts.config().threads,
            )  # fmt: skip
        finally:  # the held-out conversations and answers: not kept on disk
            await asyncio.to_thread(shutil.rmtree, folder, True)
        table = await compare(
            self.req.teacher, answers.held_out, local, self.scorers,
            adapter=self.req.adapter, student=self.req.student, cpu_hour_usd=self.req.cpu_hour_usd,
        )  # fmt: skip
        self.record["comparison"] = table
        await self._store_metrics(job, adapter, table)

    async def _store_metrics(
        self, job: dict[str, Any], adapter: dict[str, Any], table: dict[str, Any]
    ) -> None:
        """The comparison in the job's and adapter's metrics."""
        summary = {"id": self.record["id"], "teacher": self.req.teacher, **table}
        await self.parts.tuning.store.update(
            job["id"], {"metrics": {**job["metrics"], "distillation": summary}}
        )
        metrics = {**adapter["metrics"], "distillation": summary}
        async with self.parts.engine.begin() as conn:
            await conn.execute(
                update(tuning_adapters)
                .where(tuning_adapters.c.name == adapter["name"])
                .values(metrics=metrics)
            )
