"""The job runner: one job at a time per process, each in a worker process
(`python -m opsgate.tuning.worker`), never on the event loop.

The runner claims a job in the database (replicas share the queue; a job whose runner stopped
beating its heart is taken up again), starts the worker, records each step's loss, beats the
job's heart and watches for a cancel request (it then leaves a `STOP` file: the worker saves
its checkpoint and stops after the step). When the worker ends, the job succeeds (its adapter
is registered), fails (with the worker's message) or is cancelled. At shutdown a running job
is stopped the same way and queued again: the next start resumes it from its checkpoint.
The worker's other lines on stdout and stderr, and its events but steps, are the job's log
(`tuning.logs`), saved at every heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from opsgate.audit import AuditLog
from opsgate.config.tuning import TuningConfig
from opsgate.tuning.logs import JobLog
from opsgate.tuning.store import TuningStore

log = logging.getLogger("opsgate.tuning")
MARK = b"@opsgate "
JOB_FILE = "job.json"
DATA_FILE = "data.jsonl"
STOP_FILE = "STOP"
LINE_LIMIT = 2**20
"""Bytes of one line the runner reads from the worker (an event carries the evaluation)."""
SHUTDOWN_WAIT = 60.0
"""Seconds a running worker gets at shutdown to save its checkpoint and stop."""
ACTOR = "tuning"
"""The actor of the runner's own audit entries (a job succeeding, failing, stopping)."""


class Elsewhere(Protocol):
    """Runs a job that does not train here (`tuning.hosted`: a provider's fine-tuning API).
    It gets a pause that a cancel request or shutdown cuts short, and whether we are closing;
    it records the job's progress and end itself."""

    def deployment(self, model: str) -> object:
        """Where a job naming `model` would run; a 400 when it cannot run there."""

    async def run(
        self,
        job: dict[str, Any],
        wait: Callable[[float], Awaitable[None]],
        closing: Callable[[], bool],
    ) -> None: ...


class JobRunner:
    def __init__(
        self,
        store: TuningStore,
        config: Callable[[], TuningConfig],
        audit: AuditLog,
        *,
        clock: Callable[[], float] = time.time,
        hosted: Elsewhere | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._audit = audit
        self._clock = clock
        self.hosted = hosted
        self._wake = asyncio.Event()
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._config().enabled and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="tuning-runner")

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def poke(self) -> None:
        """A cancel was asked: look at the running job now."""
        self._poke.set()

    async def aclose(self) -> None:
        """Stop the running job at its next step (queued again, resumable) and the loop."""
        self._closing = True
        self._poke.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), SHUTDOWN_WAIT)
            except TimeoutError:  # a worker that does not stop is killed; its job, still
                self._task.cancel()  # `running`, is taken up once its heart is stale
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        while not self._closing:
            try:
                job = await self._store.claim(self._clock(), self._config().stale_after)
                if job is not None:
                    await self._run(job)
                    continue
            except Exception as exc:  # a database outage: try again at the next poll
                log.warning("tuning runner: %s", exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config().poll)

    async def _run(self, job: dict[str, Any]) -> None:
        folder = Path(self._config().folder) / job["id"]
        (folder / STOP_FILE).unlink(missing_ok=True)
        now = self._clock()
        if job["started_at"] is None:
            await self._store.update(job["id"], {"started_at": now})
        if job["method"] != "lora" and self.hosted is not None:
            await self.hosted.run(job, self._pause, lambda: self._closing)
            return
        env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
        env |= {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "opsgate.tuning.worker",
            str(folder),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=LINE_LIMIT,
        )
        state = _Progress(list(job["losses"] or []), await asyncio.to_thread(JobLog, folder))
        beat = asyncio.create_task(self._beat(job["id"], folder, state))
        err = asyncio.create_task(_tail(proc.stderr, state.log, self._clock))
        try:
            assert proc.stdout is not None
            async for line in proc.stdout:
                state.line(line, self._clock())
            await proc.wait()
        except BaseException:
            err.cancel()
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if proc.returncode is None:  # the runner itself was cancelled
                proc.kill()
                await proc.wait()
        failure = (await err).strip()
        await _save_log(state.log)
        await self._finish(job, folder, state, failure)

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when a cancel is asked or the runner is closing."""
        self._poke.clear()
        if not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), seconds)

    async def _beat(self, job_id: str, folder: Path, state: _Progress) -> None:
        """Every `poll` seconds (or when poked): write progress, beat the heart, pass on a
        cancel request or shutdown to the worker."""
        while True:
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self._config().poll)
            try:
                await self._store.update(job_id, state.values(self._clock()))
                await _save_log(state.log)
                current = await self._store.job(job_id)
            except Exception as exc:
                log.warning("tuning heartbeat of %s: %s", job_id, exc)
                continue
            if self._closing or (current is not None and current["cancel_requested"]):
                (folder / STOP_FILE).touch()

    async def _finish(self, job: dict[str, Any], folder: Path, state: _Progress, err: str) -> None:
        now = self._clock()
        current = await self._store.job(job["id"])
        spent = float((current or job)["metrics"].get("cpu_seconds", 0.0))
        values = {**state.values(now), "heartbeat_at": None}
        values["metrics"] = {**state.metrics(), "cpu_seconds": round(spent + state.cpu, 3)}
        event = state.last.get("event")
        if event == "done":
            values |= {"status": "succeeded", "finished_at": now}
            try:
                row = _adapter_row(current or job, folder, state, now, values["metrics"])
                await self._store.insert_adapter(row)
            except Exception as exc:  # the name was taken meanwhile
                values |= {"status": "failed", "error": f"registering the adapter: {exc}"}
        elif event == "cancelled" and self._closing and not (current or {}).get("cancel_requested"):
            values |= {"status": "queued"}  # shutdown: the next start resumes it
        elif event == "cancelled":
            values |= {"status": "cancelled", "finished_at": now, "cancel_requested": 0}
        else:
            message = state.last.get("message") or err[-2000:] or "the worker stopped"
            values |= {"status": "failed", "finished_at": now, "error": str(message)}
        await self._store.update(job["id"], values, status_in=("running",))
        detail = {"status": values["status"], "steps": state.steps}
        await self._audit.append(ACTOR, "tuning.job.finish", f"tuning_job:{job['id']}", detail)
        if values["status"] == "succeeded":
            await self._audit.append(
                ACTOR, "tuning.adapter.register", f"adapter:{job['adapter']}", {"job": job["id"]}
            )


class _Progress:
    """What the worker has reported so far."""

    def __init__(self, losses: list[float], log: JobLog) -> None:
        self.log = log
        self.card: dict[str, Any] | None = None
        self.losses = losses
        self.steps = len(losses)
        self.total: int | None = None
        self.last: dict[str, Any] = {}
        self.cpu = 0.0
        """CPU seconds of this worker (its start-up included), from its last event."""

    def line(self, raw: bytes, at: float) -> None:
        """A line of the worker's stdout: an event, or a line of the log."""
        if not raw.startswith(MARK):
            self.log.add("stdout", raw.decode(errors="replace"), at)
            return
        event = orjson.loads(raw[len(MARK) :])
        self.take(event)
        if event.get("event") not in ("step", "card"):  # the curve and the card are kept apart
            shown = {k: v for k, v in event.items() if k != "evaluation"}
            self.log.add("event", orjson.dumps(shown).decode(), at)

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "card":
            self.card = event.get("card")
        if kind == "step":
            del self.losses[int(event["step"]) - 1 :]  # a resumed run repeats nothing
            self.losses.append(float(event["loss"]))
            self.steps = int(event["step"])
        elif kind == "start":
            self.total = int(event["total_steps"])
        self.last = event if kind != "step" else self.last
        self.cpu = float(event.get("cpu_seconds", self.cpu))

    def values(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps, "losses": self.losses, "updated_at": now}
        out["heartbeat_at"] = now
        if self.total is not None:
            out["total_steps"] = self.total
        if self.card is not None:
            out["card"] = self.card
        return out

    def metrics(self) -> dict[str, Any]:
        keys = ("validation_before", "validation_after", "resumed_from", "evaluation")
        return {k: self.last[k] for k in keys if k in self.last}


def _adapter_row(
    job: dict[str, Any], folder: Path, state: _Progress, now: float, metrics: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": job["adapter"],
        "team_id": job["team_id"],
        "base": job["base"],
        "base_fingerprint": job["base_fingerprint"],
        "dataset_id": job["dataset_id"],
        "dataset_version": job["dataset_version"],
        "job_id": job["id"],
        "metrics": {**metrics, "steps": state.steps, **job["examples"]},
        "path": str(folder / "adapter"),
        "created_by": job["created_by"],
        "created_at": now,
        "tainted_at": job["tainted_at"],
        "card": state.card or job.get("card"),
    }


async def _save_log(job_log: JobLog) -> None:
    """Save the job's log; a failure to write it is a warning, never the job's end."""
    taken = job_log.snapshot()
    try:
        await asyncio.to_thread(job_log.write, taken)
    except RuntimeError:  # the loop's threads are shut down (the gateway is stopping)
        job_log.write(taken)
    except OSError as exc:
        log.warning("tuning log of %s: %s", job_log.path.parent.name, exc)


async def _tail(
    stream: asyncio.StreamReader | None,
    log: JobLog,
    clock: Callable[[], float],
    keep: int = 8192,
) -> str:
    """The worker's stderr into the log; its last `keep` bytes (the traceback of a crash)."""
    buf = b""
    if stream is not None:
        async for line in stream:
            log.add("stderr", line.decode(errors="replace"), clock())
            buf = (buf + line)[-keep:]
    return buf.decode(errors="replace")
