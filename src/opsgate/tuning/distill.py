"""Distillation: a teacher model's answers train a small student, then the two are compared.

`DistillService.start` checks everything it can at once (the teacher is a model the gateway
serves, else 404; the dataset version and enough inputs in it, else 404/400; the student's base
folder; the adapter and dataset names free, else 409; the scorers) and reads the inputs; the
rest runs in the background (`distill_run`), one stage after the other, each written to the
record:

0. `inputs` (seed `topics` instead of a dataset): the teacher writes `per_topic` questions per
   topic; too few of them fails the run (there is nothing to check them against earlier).
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
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import is_global, owning_team
from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.config.tuning import TuningConfig
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.runs import DatasetReader, StoredDataset
from opsgate.evals.scorers import Scorer, ScorerResources, build_scorer
from opsgate.feedback.datasets.service import READ_ROWS, DatasetService
from opsgate.store.crypto import BodyCipher
from opsgate.tuning.base import BaseModelError, base_fingerprint
from opsgate.tuning.distill_records import DistillRecords
from opsgate.tuning.distill_requests import DistillCreate
from opsgate.tuning.distill_run import MIN_TRAIN, DistillRun, RunParts
from opsgate.tuning.distill_teacher import Input, read_inputs
from opsgate.tuning.service import TuningService

Source = dict[str, Any]
"""Where the inputs come from, as the record says: a dataset version, or seed topics."""


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
        record = self._new_record(req, team, actor, source, inputs)
        await self.records.put(record)
        detail = {"source": source, "teacher": req.teacher}
        await self._audit.append(actor, "tuning.distill.create", f"distill:{record['id']}", detail)
        parts = RunParts(self.tuning, datasets, self._engine, self._audit, self._config,
                         self.records, self._clock)  # fmt: skip
        run = DistillRun(parts, who, req, record, actor, client, filters, scorers, inputs)
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
    ) -> tuple[Source, list[Input] | None]:
        """The dataset version's inputs, checked; seed topics: None (the run writes them)."""
        if req.dataset is None:
            assert req.topics is not None
            return {"topics": req.topics, "per_topic": req.per_topic}, None
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
        return {"id": info.id, "name": info.name, "version": version}, inputs

    def _new_record(
        self,
        req: DistillCreate,
        team: str | None,
        actor: str,
        source: Source,
        inputs: list[Input] | None,
    ) -> dict[str, Any]:
        now = self._clock()
        held = sum(i.held_out for i in inputs or [])
        counts = None if inputs is None else {
            "total": len(inputs), "train": len(inputs) - held, "held_out": held
        }  # fmt: skip
        return {
            "id": f"dst_{secrets.token_hex(8)}",
            "object": "tuning.distillation",
            "team_id": team,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
            "status": "running",
            "stage": "teacher" if inputs is not None else "inputs",
            "error": None,
            "teacher": req.teacher,
            "student": req.student,
            "adapter": req.adapter,
            "source": source,
            "filters": [_name(f) for f in req.filters],
            "inputs": counts,
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
