"""The drift service: the monitors (config file and API), a background scheduler that evaluates
each when due, stored results, and what happens when one enters `drift` (an alert, a gauge, a
proposal). Never on the request path; `run` evaluates on demand (`opsgate drift run`).

Several replicas each run the scheduler and share it through the store: a scheduled evaluation
first claims the monitor's period (`DriftStore.claim`), so exactly one replica evaluates a
monitor per `every`; the others see the claim and wait for the next period. Whether a monitor
*entered* drift is judged against its newest stored result, whichever replica wrote it, so the
alert is sent once. A monitor whose run fails (its claim or its result cannot be written) is
logged and counted (`opsgate_drift_scheduler_failures`), retried at the next tick, and never
stops the loop. `run` (on demand) evaluates without claiming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsgate.alerts import Alert
from opsgate.audit import AuditLog
from opsgate.cache.embed import EmbedderUnavailableError
from opsgate.config.drift import DriftConfig, MonitorConfig
from opsgate.drift.checks import (
    DatasetTexts,
    Evaluation,
    ReferenceCache,
    check_input,
    check_operational,
    check_quality,
    check_stats,
)
from opsgate.drift.proposals import (
    CreateDataset,
    Proposals,
    StartEval,
    proposal_row,
    summary,
)
from opsgate.drift.sampler import DriftSampler
from opsgate.drift.store import RUNNING, DriftStore, Window
from opsgate.errors import BadRequestError, NotFoundError, OpsgateError
from opsgate.telemetry.drift_metrics import DriftMetrics

log = logging.getLogger("opsgate.drift")


class MonitorExistsError(OpsgateError):
    status = 409
    type = "invalid_request_error"
    default_code = "monitor_exists"


@dataclass(frozen=True, slots=True)
class Monitor:
    config: MonitorConfig
    source: str  # config | api
    team_id: str | None = None
    created_by: str | None = None


class DriftService:
    def __init__(
        self,
        config: Callable[[], DriftConfig],
        store: DriftStore,
        sampler: DriftSampler,
        *,
        emit: Callable[[Alert], bool] | None = None,
        metrics: DriftMetrics | None = None,
        audit: AuditLog | None = None,
        create_dataset: CreateDataset | None = None,
        dataset_texts: DatasetTexts | None = None,
        start_eval: StartEval | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self.store = store
        self.sampler = sampler
        self._emit = emit
        self._metrics = metrics
        self._dataset_texts = dataset_texts
        self._references = ReferenceCache()
        self._clock = clock
        self.proposals = (
            Proposals(store, audit, create_dataset, self._monitor_source, clock, start_eval)
            if audit is not None
            else None
        )
        self._last: dict[str, float] = {}
        """When each monitor was last evaluated here or elsewhere, as far as this replica knows
        (due again `every` seconds later; the claim has the last word)."""
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- monitors --------------------------------------------------------------------------

    async def monitors(self) -> list[Monitor]:
        found = [Monitor(m, "config") for m in self._config().monitors]
        taken = {m.config.name for m in found}
        for row in await self.store.monitors():
            if row["name"] in taken:
                continue
            try:
                spec = MonitorConfig.model_validate(row["spec"])
            except ValueError:
                log.warning("stored drift monitor %s no longer validates", row["name"])
                continue
            found.append(Monitor(spec, "api", row["team_id"], row["created_by"]))
        return found

    async def monitor(self, name: str) -> Monitor | None:
        return next((m for m in await self.monitors() if m.config.name == name), None)

    async def _monitor_source(self, name: str) -> tuple[MonitorConfig, str] | None:
        found = await self.monitor(name)
        return (found.config, found.source) if found is not None else None

    async def create(self, spec: MonitorConfig, team_id: str | None, actor: str) -> Monitor:
        """A new API monitor; 400 when its fixed reference holds no traffic, 409 on a taken
        name."""
        if any(m.name == spec.name for m in self._config().monitors):
            raise MonitorExistsError(f"monitor {spec.name!r} is declared in the config file")
        if spec.reference.type == "fixed":
            ref = spec.reference_range(self._clock())
            window = Window(*ref)
            count = (
                await self.store.count_traces(spec.scope, window)
                if spec.kind in ("operational", "quality")
                else await self.store.count_samples(spec.scope, window)
            )
            if count == 0:
                raise BadRequestError(
                    "the reference range holds no traffic in this monitor's scope",
                    code="empty_reference",
                    param="reference",
                )
        now = self._clock()
        row = {
            "name": spec.name,
            "spec": spec.model_dump(mode="json"),
            "team_id": team_id,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
        }
        if not await self.store.add_monitor(row):
            raise MonitorExistsError(f"monitor {spec.name!r} exists")
        return Monitor(spec, "api", team_id, actor)

    async def delete(self, name: str) -> None:
        if any(m.name == name for m in self._config().monitors):
            raise BadRequestError(f"monitor {name!r} is declared in the config file; edit it there")
        if not await self.store.delete_monitor(name):
            raise NotFoundError(f"no drift monitor {name!r}", code="not_found")

    # -- evaluation ------------------------------------------------------------------------

    async def evaluate(self, monitor: MonitorConfig, now: float | None = None) -> Evaluation:
        """One evaluation (not stored); any failure is the `error` state with its reason."""
        now = self._clock() if now is None else now
        cur = Window(now - monitor.window, now)
        ref = Window(*monitor.reference_range(now))
        try:
            if monitor.kind == "input":
                try:
                    embedder = await asyncio.to_thread(self.sampler.embedder)
                except EmbedderUnavailableError as exc:
                    return Evaluation("error", reason=f"embedder unavailable: {exc}")
                return await check_input(
                    monitor, self.store, embedder, ref, cur, self._dataset_texts, self._references
                )
            if monitor.kind == "stats":
                return await check_stats(monitor, self.store, ref, cur)
            if monitor.kind == "quality":
                return await check_quality(monitor, self.store, ref, cur)
            return await check_operational(monitor, self.store, ref, cur)
        except Exception as exc:
            log.exception("drift monitor %s failed", monitor.name)
            return Evaluation("error", reason=f"{type(exc).__name__}: {exc}")

    async def run(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """Evaluate the named monitors (all when None) now, store and act on the results."""
        async with self._lock:
            out = []
            for m in await self.monitors():
                if names is None or m.config.name in names:
                    row = await self._run_one(m, claim=False)
                    assert row is not None  # only a claim can be lost
                    out.append(row)
            return out

    async def _run_one(self, monitor: Monitor, *, claim: bool) -> dict[str, Any] | None:
        """Evaluate, store and act on one monitor; with `claim`, only when this replica wins
        the monitor's period (None when another replica has it)."""
        name = monitor.config.name
        now = self._clock()
        row: dict[str, Any] = {
            "id": "dr_" + uuid.uuid4().hex[:20],
            "monitor": name,
            "evaluated_at": now,
            "state": RUNNING,
            "statistic": None,
            "threshold": None,
            "p_value": None,
            "effect": None,
            "n_ref": 0,
            "n_cur": 0,
            "reason": None,
            "detail": {},
        }
        _, previous = await self.store.last_evaluated(name)
        if claim and not await self.store.claim(row, monitor.config.every):
            last, _ = await self.store.last_evaluated(name)
            self._last[name] = now if last is None else last
            self._claimed("lost")
            return None
        if claim:
            self._claimed("won")
        ev = await self.evaluate(monitor.config, now)
        row.update(
            state=ev.state,
            statistic=ev.statistic,
            threshold=ev.threshold,
            p_value=ev.p_value,
            effect=ev.effect,
            n_ref=ev.n_ref,
            n_cur=ev.n_cur,
            reason=ev.reason,
            detail=ev.detail,
        )
        await (self.store.finish(row) if claim else self.store.add_result(row))
        self._last[name] = now
        if self._metrics is not None:
            self._metrics.evaluated(name, ev.state, ev.p_value)
        if ev.state == "drift" and previous != "drift":
            await self._entered_drift(monitor, row, ev, now)
        return row

    def _claimed(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.claims.labels(outcome).inc()

    async def _entered_drift(
        self, monitor: Monitor, row: dict[str, Any], ev: Evaluation, now: float
    ) -> None:
        m = monitor.config
        proposal: dict[str, Any] | None = None
        if m.proposal != "none":
            proposal = proposal_row(m, monitor.team_id, row["id"], ev, now)
            await self.store.add_proposal(proposal)
        if m.alert and self._emit is not None:
            self._emit(
                Alert(
                    kind="drift.detected",
                    message=f"Drift monitor {m.name} ({m.kind}) entered drift: {summary(m, ev)}.",
                    severity="warning",
                    labels={"monitor": m.name, "kind": m.kind},
                    data={
                        "result_id": row["id"],
                        "p_value": ev.p_value,
                        "statistic": ev.statistic,
                        "effect": ev.effect,
                        "n_ref": ev.n_ref,
                        "n_cur": ev.n_cur,
                        "proposal_id": proposal["id"] if proposal else None,
                        "proposal": m.proposal,
                    },
                )
            )

    # -- background ------------------------------------------------------------------------

    async def start(self) -> None:
        """Seed when each monitor last ran from the stored results, then start sampling and
        scheduling."""
        try:
            latest = await self.store.latest()
        except Exception as exc:
            log.warning("drift results could not be read (%s); starting afresh", exc)
            latest = {}
        for name, row in latest.items():
            self._last[name] = row["evaluated_at"]
        self.sampler.start()
        if self._task is None:
            self._task = asyncio.create_task(self._schedule(), name="drift-monitors")

    async def _schedule(self) -> None:
        while True:
            config = self._config()
            if config.enabled:
                try:
                    await self.tick()
                except Exception:  # the monitor list could not be read: try again next time
                    log.exception("drift scheduler tick failed")
                    self._failed("*")
            await asyncio.sleep(config.interval)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass of the scheduler: each monitor due (as far as this replica knows) is
        claimed and, when won, evaluated; the results this replica stored. A monitor that
        fails is logged and counted, and the others still run."""
        now = self._clock()
        done = []
        for m in await self.monitors():
            last = self._last.get(m.config.name)
            if last is not None and now < last + m.config.every:
                continue
            try:
                async with self._lock:
                    row = await self._run_one(m, claim=True)
            except Exception:
                log.exception("drift monitor %s could not be run; retried next tick", m.config.name)
                self._failed(m.config.name)
                continue
            if row is not None:
                done.append(row)
        return done

    def _failed(self, monitor: str) -> None:
        if self._metrics is not None:
            self._metrics.failures.labels(monitor).inc()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.sampler.aclose()
