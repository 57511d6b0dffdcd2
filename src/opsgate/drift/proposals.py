"""Proposals: what a monitor entering `drift` suggests, as a record a user accepts or dismisses.

Nothing here runs by itself: a proposal is created with the drift result, and only an explicit
accept (audited) acts on it:
- `dataset`: a dataset of the drifted window's sampled traces is created for review;
- `eval_run`: the same dataset, and an eval run on it is started (`StartEval`, the eval
  service's own start) with the accepting caller's key, so its calls are traced, costed and
  budgeted as theirs: the target is the model of the monitor's scope, else the model most of
  the drifted traces asked for; the outcome holds the run's id. Accepted where no key comes
  with the decision (the dashboard), the dataset is made and the outcome names the
  `opsgate eval run` to start;
- `refresh_reference`: an API monitor with a fixed reference gets the drifted window as its
  new reference; a trailing reference refreshes itself, a config monitor's file is the user's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.config.drift import MonitorConfig
from opsgate.drift.checks import Evaluation
from opsgate.drift.store import DriftStore
from opsgate.errors import BadRequestError, NotFoundError, OpsgateError

MAX_TRACES = 1000
"""Trace ids a proposal keeps (the dataset it would create)."""
CreateDataset = Callable[[Principal, str, list[str], str], Awaitable[str]]
"""(who, name, trace ids, actor) -> the new dataset's id."""
EVAL_SCORERS = ["refusal", "hallucination"]
"""What a drift eval run scores: refusals on every row, support by the context where a row has
one (rows of drifted traffic have no expected answer)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an eval run's calls are made with: the deciding caller's own key and the
    OpenAI-compatible base URL of the listener the decision came in on."""

    key: str
    base_url: str


@dataclass(frozen=True, slots=True)
class EvalRequest:
    name: str
    dataset_id: str
    model: str
    scorers: list[str]
    credentials: Credentials
    actor: str


StartEval = Callable[[Principal, EvalRequest], Awaitable[str]]
"""(who, what to run) -> the started run's id; the eval service's errors as they are."""


class ProposalClosedError(OpsgateError):
    status = 409
    type = "invalid_request_error"
    default_code = "proposal_closed"


def proposal_row(
    monitor: MonitorConfig, team_id: str | None, result_id: str, ev: Evaluation, now: float
) -> dict[str, Any]:
    """The record a monitor entering drift leaves."""
    start = now - monitor.window
    detail: dict[str, Any] = {
        "window": [start, now],
        "trace_ids": ev.trace_ids[:MAX_TRACES],
        "p_value": ev.p_value,
        "effect": ev.effect,
        "summary": summary(monitor, ev),
    }
    if monitor.kind == "input":
        detail["clusters"] = ev.detail.get("clusters", [])[:3]
    if monitor.proposal == "eval_run":
        detail["eval"] = {"model": monitor.scope.model, "scorers": EVAL_SCORERS}
    return {
        "id": "dp_" + uuid.uuid4().hex[:20],
        "monitor": monitor.name,
        "result_id": result_id,
        "kind": monitor.proposal,
        "status": "open",
        "team_id": team_id,
        "created_at": now,
        "decided_at": None,
        "decided_by": None,
        "detail": detail,
        "outcome": None,
    }


def summary(monitor: MonitorConfig, ev: Evaluation) -> str:
    """One sentence on what changed (alerts and proposals say it)."""
    p = f"p={ev.p_value:.3g}" if ev.p_value is not None else "no p-value"
    if monitor.kind == "input":
        grew = [c for c in ev.detail.get("clusters") or [] if c["delta"] > 0]
        top = max(grew, key=lambda c: c["delta"]) if grew else None
        share = ""
        if top:
            share = f"; topic cluster {top['cluster']} went from {top['ref_share']:.0%} to "
            share += f"{top['cur_share']:.0%} of prompts"
        return f"prompt embeddings differ from the reference ({p}, effect {ev.effect:.3f}){share}"
    if monitor.kind == "quality":
        d = ev.detail
        return (
            f"{d.get('metric')} mean went from {d.get('ref_mean', 0):.3f} to "
            f"{d.get('cur_mean', 0):.3f} (CUSUM {ev.statistic:.2f} over {ev.threshold:.2f}, {p})"
        )
    top = ev.detail.get("top")
    return f"{monitor.kind} statistics differ, most in {top} ({p}, Bonferroni-combined)"


class Proposals:
    def __init__(
        self,
        store: DriftStore,
        audit: AuditLog,
        create_dataset: CreateDataset | None,
        monitor: Callable[[str], Awaitable[tuple[MonitorConfig, str] | None]],
        clock: Callable[[], float] = time.time,
        start_eval: StartEval | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._create_dataset = create_dataset
        self._start_eval = start_eval
        self._monitor = monitor  # name -> (config, source) or None
        self._clock = clock

    async def decide(
        self,
        who: Principal,
        proposal: Mapping[str, Any],
        accept: bool,
        actor: str,
        credentials: Credentials | None = None,
    ) -> dict[str, Any]:
        """Accept (act on it) or dismiss an open proposal; both audited. `credentials`: what
        an accepted `eval_run` proposal's run calls with (None: the run is not started)."""
        if proposal["status"] != "open":
            raise ProposalClosedError(f"proposal {proposal['id']} is already {proposal['status']}")
        outcome: dict[str, Any] | None = None
        if accept:
            outcome = await self._act(who, proposal, actor, credentials)
        status = "accepted" if accept else "dismissed"
        done = await self._store.decide(proposal["id"], status, actor, self._clock(), outcome)
        if not done:
            raise ProposalClosedError(f"proposal {proposal['id']} was decided meanwhile")
        await self._audit.append(
            actor,
            f"drift.proposal.{'accept' if accept else 'dismiss'}",
            f"drift_proposal:{proposal['id']}",
            {"monitor": proposal["monitor"], "kind": proposal["kind"], **(outcome or {})},
        )
        found = await self._store.proposal(proposal["id"])
        if found is None:
            raise NotFoundError(f"no drift proposal {proposal['id']!r}", code="not_found")
        return found

    async def _act(
        self,
        who: Principal,
        proposal: Mapping[str, Any],
        actor: str,
        credentials: Credentials | None,
    ) -> dict[str, Any]:
        kind, detail = proposal["kind"], proposal["detail"]
        if kind in ("dataset", "eval_run"):
            ids = list(detail.get("trace_ids") or [])
            if not ids:
                raise BadRequestError("the proposal kept no traces to build a dataset from")
            if self._create_dataset is None:
                raise BadRequestError("datasets are not available on this gateway")
            name = f"drift-{proposal['monitor']}-{int(detail['window'][1])}"
            dataset = await self._create_dataset(who, name, ids, actor)
            outcome: dict[str, Any] = {"dataset_id": dataset, "dataset": name}
            if kind == "eval_run":
                outcome.update(await self._eval(who, detail, name, dataset, actor, credentials))
            return outcome
        if kind == "refresh_reference":
            return await self._refresh(proposal)
        raise BadRequestError(f"a {kind!r} proposal has nothing to accept")

    async def target_model(self, detail: Mapping[str, Any]) -> str | None:
        """The model an eval run of a proposal targets: its monitor's scope, else the model
        most of its traces asked for."""
        model = (detail.get("eval") or {}).get("model")
        if model:
            return str(model)
        return await self._store.common_model(list(detail.get("trace_ids") or []))

    async def _eval(
        self,
        who: Principal,
        detail: Mapping[str, Any],
        name: str,
        dataset: str,
        actor: str,
        credentials: Credentials | None,
    ) -> dict[str, Any]:
        model = await self.target_model(detail)
        scorers = list((detail.get("eval") or {}).get("scorers") or EVAL_SCORERS)
        command = f"opsgate eval run --dataset {name} --model {model or 'MODEL'}"
        why = None
        if model is None:
            why = "no model to target"
        elif self._start_eval is None:
            why = "eval runs are not available here"
        elif credentials is None:
            why = "no API key came with the decision (start it with the command)"
        if why is not None or model is None or credentials is None or self._start_eval is None:
            return {"eval": command, "eval_not_started": why}
        req = EvalRequest(name, dataset, model, scorers, credentials, actor)
        run_id = await self._start_eval(who, req)
        return {"eval": command, "eval_run_id": run_id, "eval_model": model}

    async def _refresh(self, proposal: Mapping[str, Any]) -> dict[str, Any]:
        found = await self._monitor(proposal["monitor"])
        if found is None:
            raise NotFoundError(f"monitor {proposal['monitor']!r} no longer exists")
        monitor, source = found
        if monitor.reference.type == "trailing":
            return {"note": "a trailing reference follows the traffic by itself"}
        if source != "api":
            return {"note": "a monitor from the config file changes in the file"}
        start, end = proposal["detail"]["window"]
        spec = monitor.model_dump(mode="json")
        spec["reference"] = {"type": "fixed", "start": start, "end": end}
        await self._store.update_monitor(monitor.name, spec, self._clock())
        return {"reference": {"start": start, "end": end}}
