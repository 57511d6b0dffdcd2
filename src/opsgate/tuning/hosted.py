"""Provider-hosted fine-tuning (`method: openai`): the same job record, trained by OpenAI's
fine-tuning jobs API instead of a local worker.

The runner claims a hosted job as any other and hands it here. The exported dataset version
is split as a LoRA job's would be (same seed, same sides), uploaded (`POST /files`, purpose
`fine-tune`), and a supervised job is created on the provider with the job's hyperparameters
and suffix. Then, every `tuning.hosted_poll` seconds, the provider's job and its new events are
read: metrics events become the loss curve (`train_loss` per step, `total_steps`, the last
`valid_loss`), messages the job's recent `provider.events`. A cancel request is passed on
(`POST .../cancel`). When the provider's job succeeds, its `fine_tuned_model` is registered as
an adapter of kind `hosted` (no local weights: a deployment serves it by that model name).
Once the provider's job is over, the uploaded files are deleted from the provider.

The heart still beats every `tuning.poll` seconds, so replicas share hosted jobs through the
same claim: a gateway that stops leaves the job queued with its provider job id, and the next
runner follows that provider job instead of starting another. Provider errors are job errors
that say what was refused and why; 429s, 5xx and unreachable providers are tried again
(`ATTEMPTS` in a row) before the job fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import orjson

from opsgate.audit import AuditLog
from opsgate.config.schema import DeploymentConfig, ModelGroupConfig
from opsgate.config.tuning import TuningConfig
from opsgate.errors import BadRequestError
from opsgate.providers.errors import UpstreamError, UpstreamStatusError
from opsgate.providers.openai_tuning import PROVIDERS, OpenAIFineTuning
from opsgate.providers.transport import HTTPClient
from opsgate.tuning import runner
from opsgate.tuning.data import TrainingDataError, parse_lines, split
from opsgate.tuning.hosted_progress import FINAL, Progress, outcome
from opsgate.tuning.store import TuningStore
from opsgate.types import JSONObject

log = logging.getLogger("opsgate.tuning")
T = TypeVar("T")
ATTEMPTS = 5
"""Provider calls tried in a row on a 429, a 5xx or an unreachable provider before the job
fails (1, 2, 3, 4 times `tuning.hosted_poll` apart)."""
EVENT_PAGES = 10
"""Pages of 100 events read per look at most: a longer gap leaves a hole in the curve."""
Wait = Callable[[float], Awaitable[None]]


class HostedError(Exception):
    """The job cannot go on; the message is the job's error."""


class HostedTrainer:
    """Runs `method: openai` jobs for the `JobRunner` (see the module docstring)."""

    def __init__(
        self,
        store: TuningStore,
        config: Callable[[], TuningConfig],
        models: Callable[[], list[ModelGroupConfig]],
        http: HTTPClient,
        audit: AuditLog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._models = models
        self._http = http
        self._audit = audit
        self._clock = clock

    def deployment(self, model: str) -> DeploymentConfig:
        """The first `openai` deployment of a configured model; 400 when there is none."""
        for group in self._models():
            if group.name != model:
                continue
            for dep in group.deployments:
                if dep.provider in PROVIDERS:
                    return dep
            raise BadRequestError(
                f"model {model!r} has no openai deployment to run a fine-tuning job",
                code="invalid_deployment",
                param="hosted.deployment",
            )
        raise BadRequestError(
            f"no configured model {model!r}", code="invalid_deployment", param="hosted.deployment"
        )

    async def run(self, job: dict[str, Any], wait: Wait, closing: Callable[[], bool]) -> None:
        """Follow one claimed job until the provider finishes it, it fails, or we shut down."""
        state: JSONObject = dict(job.get("provider") or {})
        follow = Progress(job, state)
        client: OpenAIFineTuning | None = None
        try:
            try:
                dep = self.deployment(str(state.get("deployment") or ""))
            except BadRequestError as exc:
                raise HostedError(str(exc)) from None
            client = OpenAIFineTuning(dep, self._http, timeout=dep.timeout)
            calls = _Calls(wait, self._config().hosted_poll)
            if not state.get("job") or state.get("status") in FINAL:
                await self._start(follow, client, calls)
            outcome = await self._follow(follow, client, calls, wait, closing)
        except HostedError as exc:
            outcome = {"status": "failed", "error": str(exc)}
        if client is not None and outcome["status"] != "queued":
            await _forget_files(client, state)
        await self._finish(follow, outcome)

    async def _start(self, follow: Progress, client: OpenAIFineTuning, calls: _Calls) -> None:
        """Upload the train (and validation) split and create the provider's job."""
        job, state = follow.job, follow.state
        train, validation = await asyncio.to_thread(
            _splits, Path(self._config().folder) / job["id"]
        )
        state["training_file"] = await calls.do(
            "uploading the training file",
            lambda: client.upload(f"{job['id']}-train.jsonl", train),
        )
        state["validation_file"] = None
        if validation:
            state["validation_file"] = await calls.do(
                "uploading the validation file",
                lambda: client.upload(f"{job['id']}-validation.jsonl", validation),
            )
        made = await calls.do(
            "creating the fine-tuning job", lambda: client.create(_body(job, state))
        )
        state |= {"job": made["id"], "status": made.get("status"), "last_event": None}
        state["cancel_sent"] = False
        follow.reset()
        await self._store.update(job["id"], follow.values(self._clock()))

    async def _follow(
        self,
        follow: Progress,
        client: OpenAIFineTuning,
        calls: _Calls,
        wait: Wait,
        closing: Callable[[], bool],
    ) -> dict[str, Any]:
        """Beat the heart every `poll`, read the provider every `hosted_poll` (or at once on a
        cancel request) until its job is final; the outcome for `_finish`."""
        job_id, remote_id = follow.job["id"], str(follow.state["job"])
        looked = -float("inf")
        while True:
            current = await self._store.job(job_id) or follow.job
            cancel = bool(current["cancel_requested"]) and not follow.state.get("cancel_sent")
            if closing():
                return {"status": "queued"}
            now = self._clock()
            if cancel:
                follow.state["cancel_sent"] = True
                remote = await self._cancel(client, calls, remote_id)
            elif now - looked >= self._config().hosted_poll:
                remote = await calls.do("reading the job", lambda: client.job(remote_id))
            else:
                remote = None
            if remote is not None:
                looked = now
                await self._events(follow, client, calls)
                follow.state["status"] = remote.get("status")
                if remote.get("status") in FINAL:
                    return outcome(remote)
            await self._store.update(job_id, follow.values(self._clock()), status_in=("running",))
            await wait(min(self._config().poll, self._config().hosted_poll))

    async def _cancel(self, client: OpenAIFineTuning, calls: _Calls, remote_id: str) -> JSONObject:
        """Pass a cancel on; a refusal because the job ended meanwhile is that end."""
        try:
            return await calls.do("cancelling the job", lambda: client.cancel(remote_id))
        except HostedError:
            remote = await calls.do("reading the job", lambda: client.job(remote_id))
            if remote.get("status") in FINAL:
                return remote
            raise

    async def _events(self, follow: Progress, client: OpenAIFineTuning, calls: _Calls) -> None:
        """The events since the last one seen, oldest first, into the curve and messages."""
        remote_id, seen = str(follow.state["job"]), follow.state.get("last_event")
        fresh: list[JSONObject] = []
        after: str | None = None
        for _ in range(EVENT_PAGES):
            page = await calls.do(
                "reading the job's events", partial(client.events, remote_id, after=after)
            )
            data = [e for e in page["data"] if isinstance(e, dict)]
            cut = next((i for i, e in enumerate(data) if e.get("id") == seen), None)
            fresh.extend(data if cut is None else data[:cut])
            if cut is not None or not page.get("has_more") or not data:
                break
            after = str(data[-1].get("id"))
        for event in reversed(fresh):
            follow.take(event)

    async def _finish(self, follow: Progress, outcome: dict[str, Any]) -> None:
        job, now = follow.job, self._clock()
        if outcome.get("trained_tokens") is not None:
            follow.metrics["trained_tokens"] = outcome["trained_tokens"]
        values = {**follow.values(now), "heartbeat_at": None}
        status = outcome["status"]
        values["status"] = status
        if status != "queued":
            values |= {"finished_at": now, "cancel_requested": 0, "error": outcome.get("error")}
        if status == "succeeded":
            try:
                await self._store.insert_adapter(_adapter_row(job, follow, outcome["model"], now))
            except Exception as exc:  # the name was taken meanwhile
                values |= {"status": "failed", "error": f"registering the adapter: {exc}"}
        await self._store.update(job["id"], values, status_in=("running",))
        detail = {"status": values["status"], "steps": follow.steps}
        target = f"tuning_job:{job['id']}"
        await self._audit.append(runner.ACTOR, "tuning.job.finish", target, detail)
        if values["status"] == "succeeded":
            await self._audit.append(
                runner.ACTOR,
                "tuning.adapter.register",
                f"adapter:{job['adapter']}",
                {"job": job["id"], "model": outcome["model"]},
            )


async def _forget_files(client: OpenAIFineTuning, state: JSONObject) -> None:
    """Delete the uploaded training data from the provider once no provider job needs it
    (its job is final, or none was created); a failure is logged, not the job's."""
    if state.get("job") and state.get("status") not in FINAL:
        return  # our side failed while the provider's job goes on: it still reads them
    for key in ("training_file", "validation_file"):
        file_id = state.get(key)
        if not file_id:
            continue
        try:
            await client.delete_file(str(file_id))
            state[key] = None
        except UpstreamError as exc:
            log.warning("hosted tuning: deleting the provider's file %s: %s", file_id, exc)


class _Calls:
    """Provider calls with the error policy: refusals fail the job at once with what was
    refused; a 429, a 5xx or an unreachable provider is tried again, `ATTEMPTS` in a row."""

    def __init__(self, wait: Wait, pause: float) -> None:
        self._wait = wait
        self._pause = pause

    async def do(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for n in range(1, ATTEMPTS + 1):
            try:
                return await call()
            except UpstreamError as exc:
                if not exc.retryable or n == ATTEMPTS:
                    raise HostedError(_message(what, exc, n)) from None
                log.warning("hosted tuning: %s: %s (attempt %d)", what, exc, n)
            await self._wait(n * self._pause)
        raise AssertionError("unreachable")


def _message(what: str, exc: UpstreamError, attempts: int) -> str:
    hint = f" ({attempts} attempts)" if exc.retryable else ""
    if isinstance(exc, UpstreamStatusError) and exc.upstream_status in (401, 403):
        hint = " (the deployment's api_key was refused)"
    elif isinstance(exc, UpstreamStatusError) and exc.upstream_status == 429:
        hint = f" (rate limited; {attempts} attempts)"
    return f"OpenAI fine-tuning, {what}: {exc}{hint}"


def _splits(folder: Path) -> tuple[bytes, bytes]:
    """The train and validation JSONL to upload: the split a LoRA job on this dataset version
    would train and validate on."""
    try:
        spec = orjson.loads((folder / runner.JOB_FILE).read_bytes())
        data = (folder / runner.DATA_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise HostedError(
            f"the job's exported data is gone ({Path(exc.filename or '').name}; an erasure "
            "deletes it): train again on the current dataset version"
        ) from None
    try:
        parts = split(parse_lines(data.splitlines()), float(spec["validation"]), seed=spec["seed"])
    except TrainingDataError as exc:
        raise HostedError(f"training data: {exc}") from None

    def jsonl(rows: list[Any]) -> bytes:
        return b"".join(orjson.dumps({"messages": ex.messages}) + b"\n" for ex in rows)

    return jsonl(parts.train), jsonl(parts.validation)


def _body(job: dict[str, Any], state: JSONObject) -> JSONObject:
    """`POST /fine_tuning/jobs`: a supervised job on the base with the job's settings."""
    settings = job["settings"]
    keys = ("n_epochs", "batch_size", "learning_rate_multiplier")
    hyper = {k: settings[k] for k in keys if settings.get(k) is not None}
    body: JSONObject = {
        "model": job["base"],
        "training_file": state["training_file"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
        "metadata": {"opsgate_job": job["id"]},
    }
    if state.get("validation_file"):
        body["validation_file"] = state["validation_file"]
    for key in ("suffix", "seed"):
        if settings.get(key) is not None:
            body[key] = settings[key]
    return body


def _adapter_row(job: dict[str, Any], follow: Progress, model: str, now: float) -> dict[str, Any]:
    return {
        "name": job["adapter"],
        "team_id": job["team_id"],
        "base": job["base"],
        "base_fingerprint": "",
        "dataset_id": job["dataset_id"],
        "dataset_version": job["dataset_version"],
        "job_id": job["id"],
        "metrics": {**follow.metrics, "steps": follow.steps, **job["examples"]},
        "path": "",
        "kind": "hosted",
        "model": model,
        "created_by": job["created_by"],
        "created_at": now,
        "tainted_at": job["tainted_at"],
    }
