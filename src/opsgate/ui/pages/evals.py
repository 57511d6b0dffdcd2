"""Evals: the eval runs in scope, one run's summary and per-example results (filtered by a
failing scorer, a target, a status), and two runs side by side with their paired comparison.

Runs are read through `EvalService` exactly as `/admin/v1/evals` reads them: the same scope
(admins everything, team roles their team's, others their own), a run outside it a 404.
"""

from __future__ import annotations

import math

from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, in_scope, scope_filter
from opsgate.errors import BadRequestError, NotFoundError
from opsgate.evals.runs import ResultRow, RunInfo
from opsgate.evals.service import EvalService
from opsgate.ui import eval_views as views
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view

P = Permission
LISTED = 100
READ = 5000
"""Results read per run for a page (the table shows the first `views.SHOWN` that match)."""


def _service(visit: Visit) -> EvalService:
    service: EvalService = visit.gateway.evals
    return service


async def _run(visit: Visit, run_id: str) -> RunInfo:
    run = await _service(visit).get(run_id)
    if run is None or not in_scope(
        visit.principal, team_id=run.team_id, user_id=run.user_id, key_id=run.owner
    ):
        raise NotFoundError(f"No eval run {run_id!r}.", code="eval_run_not_found")
    return run


async def _results(visit: Visit, run: RunInfo) -> list[ResultRow]:
    rows: list[ResultRow] = []
    async for page in _service(visit).store.results(run.id):
        rows += page
        if len(rows) >= READ:
            break
    return rows[:READ]


def _param(visit: Visit, name: str) -> str | None:
    value = (visit.request.query_params.get(name) or "").strip()
    return value or None


def _below(visit: Visit) -> float:
    raw = _param(visit, "below")
    if raw is None:
        return views.DEFAULT_BELOW
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise BadRequestError("below must be a number from 0 to 1.")
    return value


def _choice(visit: Visit, name: str, allowed: list[str]) -> str | None:
    value = _param(visit, name)
    if value is not None and value not in allowed:
        raise BadRequestError(f"{name} must be one of: {', '.join(allowed) or '(none)'}.")
    return value


@view(P.EVALS_READ)
async def evals_page(visit: Visit) -> Response:
    runs = await _service(visit).runs(scope_filter(visit.principal), LISTED)
    rows = [(run, views.summary_rows(run)) for run in runs]
    return visit.render("evals.html", {"runs": rows})


@view(P.EVALS_READ)
async def run_page(visit: Visit) -> Response:
    run = await _run(visit, visit.request.path_params["run_id"])
    scorers, targets = views.scorer_names(run), views.target_names(run)
    keep = views.RowFilter(
        target=_choice(visit, "target", targets),
        failing=_choice(visit, "failing", scorers),
        below=_below(visit),
        status=_choice(visit, "status", ["ok", "failed"]),
    )
    found = views.filtered([await _results(visit, run)], keep)
    others = [r for r in await _service(visit).runs(scope_filter(visit.principal), LISTED)
              if r.id != run.id]  # fmt: skip
    return visit.render(
        "eval_run.html",
        {
            "run": run,
            "summary": views.summary_rows(run),
            "scorers": scorers,
            "targets": targets,
            "keep": keep,
            "found": found,
            "others": others,
            "shown": views.SHOWN,
        },
    )


@view(P.EVALS_READ)
async def compare_page(visit: Visit) -> Response:
    base_id, run_id = _param(visit, "base"), _param(visit, "run")
    if base_id is None or run_id is None:
        raise BadRequestError("Pick two runs to compare (base and run).")
    base, run = await _run(visit, base_id), await _run(visit, run_id)
    scorers = [s for s in views.scorer_names(run) if s in set(views.scorer_names(base))]
    failing = _choice(visit, "failing", scorers)
    changed = visit.request.query_params.get("changed") == "1"
    pairs = views.pairings(views.target_names(base), views.target_names(run))
    lined = views.side_by_side(
        await _results(visit, base), await _results(visit, run), pairs, scorers
    )
    kept = views.compare_filter(lined, changed=changed, failing=failing)
    comparison = await _service(visit).compare(base.id, run.id)
    return visit.render(
        "eval_compare.html",
        {
            "base": base,
            "run": run,
            "scorers": scorers,
            "comparison": [c.as_json() for c in comparison],
            "pairs": kept[: views.SHOWN],
            "matched": len(kept),
            "total": len(lined),
            "changed": changed,
            "failing": failing,
            "shown": views.SHOWN,
        },
    )


PAGE = Page(
    "evals",
    "Evals",
    "/evals",
    any_of=(P.EVALS_READ,),
    routes=(
        Route("/evals", evals_page, methods=["GET"]),
        Route("/evals/compare", compare_page, methods=["GET"]),
        Route("/evals/{run_id}", run_page, methods=["GET"]),
    ),
    order=28,
)
