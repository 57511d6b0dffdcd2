"""`ExperimentService`: the process-wide experiments part — the stored definitions and their
state, the in-memory index the request path reads, the change feed that keeps every replica's
index in step, the state changes (each audited), the evaluation that turns outcomes into a
decision, and promotion.

One per process (the `Gateway` owns it); config reloads keep it and bring the config's
experiments in step with the store. Decisions are reached in the background (`evaluate_every`
seconds) and when an experiment is read; each is recorded once (a compare-and-set in the store),
so of several replicas only one promotes a winner.

The one-job pieces it uses: `definitions` (checks, exclusion-group slots), `promotion` (may a
variant be promoted; moving a prompt label), `allocation` (a bandit's next weights), `notify`
(audit entries and alerts), `reading` (outcomes, assessments, the report).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.principal import MASTER, Principal
from opsgate.access.sync import ChangeFeed
from opsgate.audit import AuditLog
from opsgate.config.experiments import ExperimentConfig
from opsgate.config.schema import Config
from opsgate.experiments.allocation import bandit_weights
from opsgate.experiments.decide import Verdict
from opsgate.experiments.definitions import check_spec, slot_for
from opsgate.experiments.errors import ExperimentConflictError, ExperimentNotFoundError
from opsgate.experiments.model import Decision, Event, Experiment, Source, Status
from opsgate.experiments.notify import Emit, Notifier
from opsgate.experiments.outcomes import Observed
from opsgate.experiments.promotion import move_label, promotable
from opsgate.experiments.reading import ExperimentReader
from opsgate.experiments.registry import Registry
from opsgate.experiments.sql import SqlExperimentStore
from opsgate.prompts.service import PromptService

log = logging.getLogger("opsgate.experiments")

LIVE: tuple[Status, ...] = ("running", "paused", "promoted")
RUNNING: tuple[Status, ...] = ("running",)


class ExperimentService:
    def __init__(
        self,
        engine: AsyncEngine,
        config: Callable[[], Config],
        *,
        prompts: PromptService | None = None,
        audit: AuditLog | None = None,
        emit: Emit | None = None,
        redis_url: str | None = None,
        redis_prefix: str = "opsgate:",
        evaluate_every: float = 60.0,
    ) -> None:
        self.engine = engine
        self.config = config
        self.store = SqlExperimentStore(engine)
        self.prompts = prompts
        self.notify = Notifier(audit, emit)
        self.reader = ExperimentReader(engine, config)
        self.registry = Registry()
        self.experiments: dict[str, Experiment] = {}
        self.evaluate_every = evaluate_every
        self.feed = ChangeFeed(
            self.store, self.refresh, redis_url=redis_url, prefix=redis_prefix, topic="experiments"
        )
        self._loop: asyncio.Task[None] | None = None
        self._pending: list[tuple[str, str, str]] = []

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring the config's experiments into the store, load all, start the feed and the
        evaluation loop. A database that is down leaves no experiment running (logged)."""
        try:
            await self.sync_config()
            await self.refresh()
        except Exception as exc:  # the gateway serves without experiments rather than not at all
            log.warning("experiments not loaded (%s); requests get no variant until they are", exc)
        await self.feed.start()
        self._loop = asyncio.create_task(self._evaluate_loop())

    async def aclose(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self.flush()
        await self.feed.aclose()

    async def reload(self) -> None:
        await self.sync_config()
        await self.changed()

    async def refresh(self) -> None:
        """Reload every stored experiment and rebuild the request path's index."""
        found = await self.store.all()
        keep = self.registry.sticky
        self.experiments = {e.name: e for e in found}
        self.registry = Registry(found)
        self.registry.sticky = keep

    async def changed(self) -> None:
        await self.refresh()
        await self.feed.announce()

    async def sync_config(self) -> None:
        """Each config experiment is stored (created once; its definition kept in step)."""
        for spec in self.config().experiments:
            stored = await self.store.get(spec.name)
            if stored is None:
                await self._create(
                    spec, team_id=spec.traffic.team_id, source="config", actor="config"
                )
            elif stored.source == "config" and stored.spec != spec:
                await self.store.replace_spec(spec.name, spec, "config")

    # --- the request path --------------------------------------------------------------------

    def note_new(self, name: str, unit: str, variant: str) -> None:
        """A bandit unit placed now: remembered here at once, stored by the next flush."""
        self.registry.remember(name, unit, variant)
        self._pending.append((name, unit, variant))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        by_name: dict[str, list[tuple[str, str]]] = {}
        for name, unit, variant in pending:
            by_name.setdefault(name, []).append((unit, variant))
        for name, pairs in by_name.items():
            try:
                await self.store.assign(name, pairs)
            except Exception as exc:
                log.warning("bandit assignments of %s not stored: %s", name, exc)

    async def recall(self, name: str, unit: str) -> str | None:
        """A bandit unit's variant from memory, else from the store (None: a new unit)."""
        known = self.registry.known(name, unit)
        if known is not None:
            return known
        stored = (await self.store.assignments(name, [unit])).get(unit)
        if stored is not None:
            self.registry.remember(name, unit, stored)
        return stored

    # --- definitions -------------------------------------------------------------------------

    def validate(self, spec: ExperimentConfig, *, replacing: str | None = None) -> None:
        """400 for an unknown metric or model, an overlap outside an exclusion group, a full
        group (the same rules as the config file)."""
        check_spec(self.config(), self.experiments.values(), spec, replacing=replacing)

    async def create(
        self, spec: ExperimentConfig, *, team_id: str, actor: str, who: Principal
    ) -> Experiment:
        await self.refresh()
        if spec.name in self.experiments:
            raise ExperimentConflictError(f"an experiment named {spec.name!r} already exists")
        self.validate(spec)
        exp = await self._create(spec, team_id=team_id, source="api", actor=actor)
        await self.notify.audit(
            actor, "experiments.create", exp, {"variants": [v.name for v in spec.variants]}
        )
        return exp

    async def _create(
        self, spec: ExperimentConfig, *, team_id: str, source: Source, actor: str
    ) -> Experiment:
        slot = slot_for(spec, await self.store.all())
        exp = await self.store.create(
            spec, team_id=team_id, source=source, slot_start=slot, actor=actor
        )
        await self.changed()
        return exp

    def get(self, name: str) -> Experiment:
        found = self.experiments.get(name)
        if found is None:
            raise ExperimentNotFoundError(f"no experiment named {name!r}", param="name")
        return found

    async def events(self, name: str) -> list[Event]:
        return await self.store.events(name)

    # --- state changes -----------------------------------------------------------------------

    async def set_status(self, name: str, to: Status, *, actor: str) -> Experiment:
        """pause (running → paused), resume (paused → running), stop (running/paused →
        stopped); anything else is a 409 saying where it stands."""
        await self.refresh()
        exp = self.get(name)
        allowed: dict[Status, tuple[Status, ...]] = {
            "paused": ("running",),
            "running": ("paused",),
            "stopped": ("running", "paused", "promoted"),
        }
        kinds = {"paused": "paused", "running": "resumed", "stopped": "stopped"}
        if to not in allowed or exp.status not in allowed[to]:
            raise ExperimentConflictError(
                f"experiment {name!r} is {exp.status}; it cannot be {kinds.get(to, to)}"
            )
        done = await self.store.transition(
            exp, to=to, allowed=allowed[to], kind=kinds[to], actor=actor, detail={}
        )
        if done is None:
            raise ExperimentConflictError(f"experiment {name!r} changed meanwhile; try again")
        await self.changed()
        await self.notify.audit(actor, f"experiments.{kinds[to]}", done, {"from": exp.status})
        return done

    async def promote(
        self, name: str, variant: str, *, actor: str, who: Principal = MASTER
    ) -> Experiment:
        """Make `variant` what the traffic gets: a prompt variant's version gets the label the
        experiment promotes (through the prompt registry, audited there too); a model or
        parameter variant is served to all of the experiment's traffic. 409 for a variant a
        guardrail stopped or one the statistics found worse."""
        await self.refresh()
        exp = self.get(name)
        chosen = await promotable(exp, variant, self.reader)
        await move_label(self.prompts, exp, chosen, who=who, actor=actor)
        done = await self.store.transition(
            exp,
            to="promoted",
            allowed=LIVE,
            kind="promoted",
            actor=actor,
            detail={"variant": variant, "prompt_version": chosen.prompt_version},
            promoted=variant,
        )
        if done is None:
            raise ExperimentConflictError(f"experiment {name!r} changed meanwhile; try again")
        await self.changed()
        await self.notify.audit(actor, "experiments.promote", done, {"variant": variant})
        self.notify.alert(
            "experiment.promoted", f"experiment {name}: variant {variant} promoted by {actor}", done
        )
        return done

    # --- evaluation --------------------------------------------------------------------------

    async def evaluate(self, exp: Experiment) -> Experiment:
        """Read the outcomes; record a new decision (once), stop on a guardrail, promote a
        winner when configured, and move a bandit's weights."""
        if exp.status != "running":
            return exp
        observed = await self.reader.observed(exp)
        assessment = await self.reader.assess(exp, observed)
        verdict = assessment.verdict
        if exp.decision is None and verdict is not None:
            return await self._decided(exp, verdict)
        if exp.spec.allocation == "thompson":
            return await self._reweigh(exp, observed)
        return exp

    async def _decided(self, exp: Experiment, verdict: Verdict) -> Experiment:
        decision = Decision(verdict.outcome, verdict.variant, time.time(), verdict.reason)
        to: Status = "stopped" if verdict.outcome == "guardrail" else "running"
        done = await self.store.transition(
            exp,
            to=to,
            allowed=RUNNING,
            kind="decision",
            actor="experiments",
            detail=decision.to_json(),
            decision=decision,
            if_unchanged=True,
        )
        if done is None:  # another replica recorded it first
            await self.refresh()
            return self.experiments.get(exp.name, exp)
        await self.changed()
        await self.notify.audit("experiments", "experiments.decision", done, decision.to_json())
        severity = "warning" if verdict.outcome == "guardrail" else "info"
        self.notify.alert(
            "experiment.decision",
            f"experiment {exp.name}: {decision.text} ({verdict.reason})",
            done,
            severity,
        )
        if verdict.outcome == "winner" and exp.spec.auto_promote and verdict.variant is not None:
            try:
                return await self.promote(
                    exp.name, verdict.variant, actor="experiments:auto_promote"
                )
            except Exception as exc:
                log.error("auto-promotion of %s in %s failed: %s", verdict.variant, exp.name, exc)
        return done

    async def _reweigh(self, exp: Experiment, observed: Sequence[Observed]) -> Experiment:
        weights = bandit_weights(exp, observed, self.reader, self.evaluate_every)
        done = await self.store.transition(
            exp,
            to="running",
            allowed=RUNNING,
            kind="allocation",
            actor="experiments",
            detail={
                "weights": dict(zip([v.name for v in exp.spec.variants], weights, strict=True))
            },
            weights=weights,
            if_unchanged=True,
        )
        if done is not None:
            await self.changed()
            return done
        return exp

    async def report(self, name: str) -> dict[str, Any]:
        """The experiment as the API and the dashboard show it (evaluated first, so a decision
        due now is recorded before it is shown)."""
        exp = self.get(name)
        if exp.status == "running":
            exp = await self.evaluate(exp)
        return await self.reader.report(exp, await self.store.events(exp.name))

    async def evaluate_all(self) -> None:
        await self.flush()
        await self.refresh()
        for exp in list(self.experiments.values()):
            if exp.status == "running":
                try:
                    await self.evaluate(exp)
                except Exception as exc:
                    log.warning("experiment %s not evaluated: %s", exp.name, exc)

    async def _evaluate_loop(self) -> None:
        while True:
            await asyncio.sleep(self.evaluate_every)
            try:
                await self.evaluate_all()
            except Exception as exc:
                log.warning("experiments not evaluated: %s", exc)
