"""Tuning jobs and the adapter registry, as the admin API and the CLI use them.

A job is checked before it is queued, so bad input is a 400 at once rather than a failed job
later: the dataset (by id or name, in the caller's scope) is exported as `openai-chat` with
PII redacted and every line checked (`tuning.data`), the base folder is fingerprinted (remote
code refused), the adapter name must be free (409). The export and a `job.json` go into the
job's folder; the runner (`tuning.runner`) trains in a worker process. State changes are
audited; the end users whose rows a job trained on are recorded for erasure (`holders`). The
job's scorers (`tuning.evaluate`) are checked too, and the export's facts start its data card
(`tuning.card`).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import is_global, owning_team
from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.config.tuning import TuningConfig
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.feedback.datasets.model import DatasetInfo
from opsgate.feedback.datasets.service import DatasetService
from opsgate.tuning import logs
from opsgate.tuning.base import BaseModelError, base_fingerprint
from opsgate.tuning.card import CARD_FILE, ExportFacts, first_part
from opsgate.tuning.data import TrainingDataError, parse_lines, split
from opsgate.tuning.evaluate import check_scorers
from opsgate.tuning.requests import JobCreate
from opsgate.tuning.runner import DATA_FILE, JOB_FILE, JobRunner
from opsgate.tuning.store import TuningStore


def _owners(who: Principal) -> list[str] | None:
    """The teams whose jobs and adapters `who` sees; None for every team."""
    if is_global(who):
        return None
    return [who.team_id] if who.team_id else []


def _visible(who: Principal, team_id: str | None) -> bool:
    owners = _owners(who)
    return owners is None or (team_id or "") in owners


class TuningService:
    def __init__(
        self,
        store: TuningStore,
        runner: JobRunner,
        datasets: DatasetService | None,
        audit: AuditLog,
        config: Callable[[], TuningConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.runner = runner
        self._datasets = datasets
        self._audit = audit
        self._config = config
        self._clock = clock

    # --- jobs --------------------------------------------------------------------------------

    async def create(self, who: Principal, req: JobCreate, actor: str) -> dict[str, Any]:
        team = self._team_for(who, req.team_id)
        if self._datasets is None:
            raise BadRequestError("datasets are not available on this gateway")
        info = await self._datasets.resolve(who, req.dataset)
        version = self._datasets.version_of(info, req.dataset_version)
        check_scorers(req.evaluation.scorers)
        base, fingerprint, settings, provider = await self._method(req)
        if await self.store.adapter_taken(req.adapter):
            raise ConflictError(
                f"an adapter named {req.adapter!r} exists or is being trained",
                code="adapter_exists",
                param="adapter",
            )
        job_id = f"tj_{secrets.token_hex(8)}"
        folder = Path(self._config().folder) / job_id
        try:
            examples, end_users, card = await self._prepare(who, info, version, req, folder, actor)
            evaluation = req.evaluation.model_dump() if req.method == "lora" else None
            spec = {
                "base": str(base),
                "settings": settings,
                "validation": req.validation,
                "seed": f"{info.id}@{version}",
                "threads": self._config().threads,
                "evaluation": evaluation,
                "card": card,
            }
            await asyncio.to_thread((folder / JOB_FILE).write_bytes, orjson.dumps(spec))
            now = self._clock()
            row: dict[str, Any] = {
                "id": job_id,
                "team_id": team,
                "created_by": actor,
                "created_at": now,
                "updated_at": now,
                "status": "queued",
                "cancel_requested": 0,
                "dataset_id": info.id,
                "dataset_version": version,
                "base": str(base),
                "base_fingerprint": fingerprint,
                "adapter": req.adapter,
                "settings": settings,
                "method": req.method,
                "provider": provider,
                "examples": examples,
                "steps": 0,
                "losses": [],
                "metrics": {},
                "tainted_subjects": 0,
                "evaluation": evaluation,
                "card": card,
            }
            await self.store.insert_job(row, end_users)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        detail = {"dataset": info.id, "version": version, "adapter": req.adapter}
        await self._audit.append(actor, "tuning.job.create", f"tuning_job:{job_id}", detail)
        self.runner.wake()
        return await self._job_or_404(job_id)

    async def _prepare(
        self,
        who: Principal,
        info: DatasetInfo,
        version: int,
        req: JobCreate,
        folder: Path,
        actor: str,
    ) -> tuple[dict[str, int], list[str], dict[str, Any]]:
        """Export the dataset into the job folder and check it; the example counts, the end
        users whose rows it holds and the data card's first part."""
        assert self._datasets is not None
        _, export, total = await self._datasets.export(
            who, info.id, fmt="openai-chat", version=version, redact=True, metric=None, actor=actor
        )
        chunks = [chunk async for chunk in export.lines()]
        end_users: set[str] = set()
        corrections = 0
        async for batch in self._datasets.store.batches(info.id, version):
            end_users.update(r.end_user for r in batch if r.end_user)
            corrections += sum(1 for r in batch if r.has_reference)
        data = b"".join(chunks)
        report = export.report
        facts = ExportFacts(
            report.id, total, report.rows, report.duplicates, report.skipped,
            export.renderer.undecryptable, report.redactions, corrections,
        )  # fmt: skip
        created = self._clock()

        def check_and_write() -> tuple[dict[str, int], dict[str, Any]]:
            seed = f"{info.id}@{version}"  # one dataset version: one split, whatever the job
            parts = split(parse_lines(data.splitlines()), req.validation, seed=seed)
            card = first_part(
                job_id=folder.name,
                dataset={"id": info.id, "name": info.name, "version": version},
                facts=facts,
                parts=parts,
                seed=seed,
                validation=req.validation,
                created_at=created,
            )
            folder.mkdir(parents=True, exist_ok=False)
            (folder / DATA_FILE).write_bytes(data)
            (folder / CARD_FILE).write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2))
            return {"train": len(parts.train), "validation": len(parts.validation)}, card

        try:
            examples, card = await asyncio.to_thread(check_and_write)
        except TrainingDataError as exc:
            raise BadRequestError(
                f"dataset {info.name!r} v{version} cannot train a model: {exc}",
                code="invalid_training_data",
                param="dataset",
            ) from None
        return examples, sorted(end_users), card

    async def _method(
        self, req: JobCreate
    ) -> tuple[str, str, dict[str, Any], dict[str, Any] | None]:
        """Base, its fingerprint, settings and provider state: a LoRA job's base folder is
        checked; a hosted job's deployment must be an `openai` one (`tuning.hosted`)."""
        if req.hosted is None:
            base = self._base(req.base)
            fingerprint = await asyncio.to_thread(_fingerprint, base)
            return str(base), fingerprint, req.settings.model_dump(), None
        if self.runner.hosted is None:
            raise BadRequestError("hosted fine-tuning is not available on this gateway")
        self.runner.hosted.deployment(req.hosted.deployment)
        settings = req.hosted.model_dump(exclude={"deployment"})
        return req.base, "", settings, {"deployment": req.hosted.deployment}

    def _team_for(self, who: Principal, asked: str | None) -> str | None:
        return owning_team(who, asked, "tuning jobs")

    def _base(self, raw: str) -> Path:
        base = Path(raw).expanduser().resolve()
        allowed = [Path(p).expanduser().resolve() for p in self._config().bases]
        if allowed and not any(base.is_relative_to(a) for a in allowed):
            raise BadRequestError(
                f"base {raw!r} is not under an allowed folder (tuning.bases)",
                code="base_not_allowed",
                param="base",
            )
        return base

    async def _job_or_404(self, job_id: str) -> dict[str, Any]:
        job = await self.store.job(job_id)
        if job is None:
            raise NotFoundError(f"no tuning job {job_id!r}", code="job_not_found")
        return job

    async def job(self, who: Principal, job_id: str) -> dict[str, Any]:
        """A job in the caller's scope; 404 as for an unknown id otherwise."""
        job = await self.store.job(job_id)
        if job is None or not _visible(who, job["team_id"]):
            raise NotFoundError(f"no tuning job {job_id!r}", code="job_not_found")
        return job

    async def jobs(self, who: Principal, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        return await self.store.jobs(_owners(who), status=status, limit=limit)

    async def logs(self, who: Principal, job_id: str, after: int) -> dict[str, Any]:
        """The job's log lines numbered above `after` (`tuning.logs`), with its status."""
        job = await self.job(who, job_id)
        folder = Path(self._config().folder) / job_id
        found = await asyncio.to_thread(logs.after, folder, after)
        return {"object": "list", "job_id": job_id, "status": job["status"], **found}

    async def cancel(self, who: Principal, job_id: str, actor: str) -> dict[str, Any]:
        """A queued job is cancelled at once; a running one is asked to stop after its current
        step (its checkpoint is kept: `resume` continues from it). 409 for a finished job."""
        job = await self.job(who, job_id)
        now = self._clock()
        if await self.store.update(
            job_id, {"status": "cancelled", "finished_at": now, "updated_at": now},
            status_in=("queued",),
        ):  # fmt: skip
            await self._audit.append(actor, "tuning.job.cancel", f"tuning_job:{job_id}")
        elif await self.store.update(
            job_id, {"cancel_requested": 1, "updated_at": now}, status_in=("running",)
        ):
            await self._audit.append(actor, "tuning.job.cancel", f"tuning_job:{job_id}")
            self.runner.poke()
        else:
            raise ConflictError(
                f"tuning job {job_id} is {job['status']}; only a queued or running job can be "
                "cancelled",
                code="job_not_cancellable",
            )
        return await self._job_or_404(job_id)

    async def resume(self, who: Principal, job_id: str, actor: str) -> dict[str, Any]:
        """Queue a cancelled or failed job again; it continues from its last checkpoint."""
        job = await self.job(who, job_id)
        if await self.store.adapter(job["adapter"]) is not None:
            raise ConflictError(
                f"an adapter named {job['adapter']!r} was registered meanwhile",
                code="adapter_exists",
            )
        values = {"status": "queued", "cancel_requested": 0, "error": None, "finished_at": None}
        if not await self.store.update(job_id, values, status_in=("cancelled", "failed")):
            raise ConflictError(
                f"tuning job {job_id} is {job['status']}; only a cancelled or failed job can be "
                "resumed",
                code="job_not_resumable",
            )
        await self._audit.append(actor, "tuning.job.resume", f"tuning_job:{job_id}")
        self.runner.wake()
        return await self._job_or_404(job_id)

    # --- adapters ----------------------------------------------------------------------------

    async def adapters(self, who: Principal) -> list[dict[str, Any]]:
        return await self.store.adapters(_owners(who))

    async def adapter(self, who: Principal, name: str) -> dict[str, Any]:
        found = await self.store.adapter(name)
        if found is None or not _visible(who, found["team_id"]):
            raise NotFoundError(f"no adapter {name!r}", code="adapter_not_found")
        return found

    async def delete_adapter(self, who: Principal, name: str, actor: str) -> dict[str, Any]:
        """Unregister an adapter and delete its weights (the job and its loss curve stay)."""
        found = await self.adapter(who, name)
        if await self.store.delete_adapter(name):
            if found["path"]:  # a hosted adapter has no local weights
                await asyncio.to_thread(shutil.rmtree, found["path"], True)
            await self._audit.append(actor, "tuning.adapter.delete", f"adapter:{name}")
        return found


def _fingerprint(base: Path) -> str:
    try:
        return base_fingerprint(base)
    except BaseModelError as exc:
        raise BadRequestError(str(exc), code="invalid_base", param="base") from None
