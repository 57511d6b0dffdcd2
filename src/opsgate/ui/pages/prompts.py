"""Prompts: the registry's prompts in your scope; per prompt its labels (move, roll back), the
label history, its versions with per-version metrics (requests, cost, p95 latency, error rate
from the usage rollups; the mean of each feedback metric from the score store), a side-by-side
diff of any two versions, and a playground that renders a version and runs it.

Every change goes through `PromptService`, exactly as the admin API's do: the same team scope,
the same `prompts:promote` rule for `production`, the same audit entry for each label move.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, allowed, is_global
from opsgate.access.scoping import scope_usage_query
from opsgate.errors import BadRequestError
from opsgate.prompts.diff import side_by_side
from opsgate.prompts.errors import PromptNotFoundError
from opsgate.prompts.metrics import feedback_by_version
from opsgate.prompts.model import PROTECTED_LABEL, PromptRef, PromptVersion, check_name
from opsgate.prompts.service import PromptService, namespace
from opsgate.store.usage import UsageQuery, UsageRow
from opsgate.ui.forms import field
from opsgate.ui.playground import Outcome, render_only, run, variables_from
from opsgate.ui.registry import Page
from opsgate.ui.usage_charts import ONE_BUCKET, WINDOWS, window_from
from opsgate.ui.visit import Visit, view
from opsgate.web.audit import actor_of

P = Permission
DEFAULT_WINDOW = "7d"
LABEL_CHOICES = (PROTECTED_LABEL, "staging")


def _service(visit: Visit) -> PromptService:
    service: PromptService = visit.gateway.prompts
    return service


def _team(visit: Visit) -> str:
    asked = visit.request.query_params.get("team_id") or visit.form.get("team_id") or None
    return namespace(visit.principal, asked)


def _name(visit: Visit) -> str:
    return check_name(visit.request.path_params["name"])


@view(P.PROMPTS_READ)
async def prompt_list(visit: Visit) -> Response:
    asked = visit.request.query_params.get("team_id") or None
    team = (
        None if is_global(visit.principal) and asked is None else namespace(visit.principal, asked)
    )
    prompts = await _service(visit).store.list_prompts(team)
    return visit.render("prompts.html", {"prompts": prompts})


async def _usage(
    visit: Visit, team: str, name: str, since: float, until: float
) -> dict[str, UsageRow]:
    if not visit.may(P.USAGE_READ) or visit.gateway.writer is None:
        return {}
    query = UsageQuery(
        since,
        until,
        ONE_BUCKET,
        ("prompt_version",),
        {"prompt_name": name, "team_id": team},
    )
    rows = await visit.trace_store().usage(scope_usage_query(visit.principal, query))
    return {row.group.get("prompt_version", ""): row for row in rows}


async def _detail(visit: Visit, *, outcome: Outcome | None = None, status: int = 200) -> Response:
    team, name = _team(visit), _name(visit)
    store = _service(visit).store
    versions = await store.versions(team, name)
    if not versions:
        raise PromptNotFoundError(f"There is no prompt named {name!r}.")
    labels = await store.labels(team, name)
    by_version: dict[int, list[str]] = {}
    for state in labels:
        by_version.setdefault(state.version, []).append(state.label)
    window = window_from(visit, DEFAULT_WINDOW)
    since, until = window.bounds(time.time())
    usage = await _usage(visit, team, name, since, until)
    feedback = (
        await feedback_by_version(_service(visit).engine, team, name, since, until)
        if visit.may(P.USAGE_READ)
        else {}
    )
    diff_from, diff_to = _diff_pair(visit, versions)
    chosen = _chosen(visit, versions)
    context: dict[str, Any] = {
        "name": name,
        "team": team,
        "versions": versions,
        "labels": labels,
        "by_version": by_version,
        "history": await store.history(team, name),
        "usage": usage,
        "feedback": feedback,
        "metric_names": sorted({m.metric for ms in feedback.values() for m in ms}),
        "windows": WINDOWS.values(),
        "window": window,
        "diff_from": diff_from,
        "diff_to": diff_to,
        "diff": side_by_side(diff_from, diff_to) if diff_from is not diff_to else [],
        "chosen": chosen,
        "label_choices": LABEL_CHOICES,
        "may_promote": visit.may(P.PROMPTS_PROMOTE),
        "may_write": visit.may(P.PROMPTS_WRITE),
        "may_run": visit.may(P.MODELS_CALL),
        "models": [m for m in sorted(visit.gateway.model_groups) if visit.principal.may_use(m)],
        "outcome": outcome,
        "form": visit.form,
        "moved": visit.request.query_params.get("moved"),
    }
    return visit.render("prompt.html", context, status=status)


def _version_param(visit: Visit, name: str) -> int | None:
    raw = visit.request.query_params.get(name) or visit.form.get(name)
    if not raw:
        return None
    if not raw.isdigit():
        raise BadRequestError(f"{name} must be a version number, got {raw!r}.")
    return int(raw)


def _find(versions: list[PromptVersion], number: int | None) -> PromptVersion | None:
    return next((v for v in versions if v.version == number), None)


def _diff_pair(visit: Visit, versions: list[PromptVersion]) -> tuple[PromptVersion, PromptVersion]:
    """The versions to compare: `from` and `to`, else the latest and the one before it."""
    newest = versions[0]
    older = versions[1] if len(versions) > 1 else newest
    old = _find(versions, _version_param(visit, "from")) or older
    new = _find(versions, _version_param(visit, "to")) or newest
    return old, new


def _chosen(visit: Visit, versions: list[PromptVersion]) -> PromptVersion:
    return _find(versions, _version_param(visit, "version")) or versions[0]


@view(P.PROMPTS_READ)
async def prompt_detail(visit: Visit) -> Response:
    return await _detail(visit)


def _back(visit: Visit, team: str, name: str, moved: str) -> Response:
    root = visit.request.scope.get("root_path", "")
    query = (
        f"?team_id={team}&moved={moved}"
        if is_global(visit.principal) and team
        else f"?moved={moved}"
    )
    return RedirectResponse(f"{root}/prompts/{name}{query}", status_code=303)


@view(P.PROMPTS_WRITE)
async def move_label(visit: Visit) -> Response:
    team, name = _team(visit), _name(visit)
    label = field(visit.form, "label") or ""
    version = _version_param(visit, "version")
    if version is None:
        raise BadRequestError("Choose the version the label should name.")
    moved = await _service(visit).move(
        visit.principal, team, name, label, version, actor=actor_of(visit.request.scope)
    )
    return _back(visit, team, name, f"{moved.label}:{moved.to_version}")


@view(P.PROMPTS_WRITE)
async def rollback(visit: Visit) -> Response:
    team, name = _team(visit), _name(visit)
    label = field(visit.form, "label") or ""
    actor = actor_of(visit.request.scope)
    moved = await _service(visit).rollback(visit.principal, team, name, label, actor=actor)
    return _back(visit, team, name, f"{moved.label}:{moved.to_version}")


@view(P.PROMPTS_READ)
async def playground(visit: Visit) -> Response:
    """Render the chosen version with the form's variables; with `run`, send it too."""
    team, name = _team(visit), _name(visit)
    number = _version_param(visit, "version")
    if number is None:
        raise BadRequestError("Choose a version to try.")
    resolved = await _service(visit).resolve(team, PromptRef(name, version=number))
    try:
        values = variables_from(visit.form, resolved.version.spec.variables)
        if visit.form.get("action") != "run":
            outcome = render_only(resolved, values)
        elif not allowed(visit.principal, P.MODELS_CALL):
            outcome = Outcome(error="Your role may not call models.", status=403)
        else:
            outcome = await run(visit, resolved, values, field(visit.form, "model"), None)
    except BadRequestError as exc:
        outcome = Outcome(error=exc.message, status=exc.status)
    return await _detail(visit, outcome=outcome, status=outcome.status)


_BASE = "/prompts/{name:str}"
PAGE = Page(
    "prompts",
    "Prompts",
    "/prompts",
    any_of=(P.PROMPTS_READ,),
    routes=(
        Route("/prompts", prompt_list, methods=["GET"]),
        Route(_BASE, prompt_detail, methods=["GET"]),
        Route(_BASE + "/labels", move_label, methods=["POST"]),
        Route(_BASE + "/rollback", rollback, methods=["POST"]),
        Route(_BASE + "/playground", playground, methods=["POST"]),
    ),
    order=35,
)
