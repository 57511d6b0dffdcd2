"""Drift: the monitors with their state, and per monitor its p-value over time against its
alpha, the sample sizes of each evaluation, the topic clusters that changed most (with example
prompts for callers allowed to read bodies, each read audited), and its proposals; accepting
or dismissing one goes through the same `Proposals` as the admin API (audited). The Overview
loads a small badge from `/drift/badge`.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, is_global
from opsgate.drift import DriftService, Monitor
from opsgate.drift.features import last_user_text
from opsgate.errors import NotFoundError
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view
from opsgate.web.audit import actor_of

P = Permission
HISTORY = 200
FLOOR = 1e-6
"""p-values are drawn as -log10(p); a p-value of 0 is drawn at this floor."""


def _service(visit: Visit) -> DriftService:
    service: DriftService = visit.gateway.drift
    return service


def _visible(visit: Visit, monitors: list[Monitor]) -> list[Monitor]:
    if is_global(visit.principal):
        return monitors
    team = visit.principal.team_id
    return [m for m in monitors if team and (m.team_id or m.config.scope.team) == team]


async def _find(visit: Visit) -> Monitor:
    name = visit.request.path_params["name"]
    found = await _service(visit).monitor(name)
    if found is None or not _visible(visit, [found]):
        raise NotFoundError(f"There is no drift monitor named {name!r}.")
    return found


@view(P.DRIFT_READ)
async def monitor_list(visit: Visit) -> Response:
    monitors = _visible(visit, await _service(visit).monitors())
    latest = await _service(visit).store.latest()
    rows = [{"m": m, "last": latest.get(m.config.name)} for m in monitors]
    names = {m.config.name for m in monitors}
    proposals = [
        p for p in await _service(visit).store.proposals(status="open") if p["monitor"] in names
    ]
    return visit.render("drift.html", {"rows": rows, "proposals": proposals})


@view(P.DRIFT_READ)
async def badge(visit: Visit) -> Response:
    """How many visible monitors are in drift or warning (the Overview's badge)."""
    monitors = _visible(visit, await _service(visit).monitors())
    latest = await _service(visit).store.latest()
    states = [(latest.get(m.config.name) or {}).get("state") for m in monitors]
    counts = {s: states.count(s) for s in ("drift", "warning", "error")}
    layout = "_fragment.html" if visit.request.headers.get("hx-request") else "base.html"
    return visit.render(
        "drift_badge.html", {"layout": layout, "counts": counts, "total": len(monitors)}
    )


def p_chart(results: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """-log10(p) per evaluation (oldest first) and the line it must cross (-log10 alpha), in the
    chart format of `usage_charts.charts`."""
    ordered = list(reversed(results))
    evidence = [
        None if r["p_value"] is None else round(-math.log10(max(r["p_value"], FLOOR)), 3)
        for r in ordered
    ]
    line = [round(-math.log10(alpha), 3)] * len(ordered)
    series = [{"label": "-log10 p", "values": evidence}, {"label": "threshold", "values": line}]
    charts = [{"id": "evidence", "title": "Evidence of drift", "unit": "", "series": series}]
    cusum = [r["statistic"] for r in ordered]
    thresholds = [r["threshold"] for r in ordered]
    if any(r["detail"].get("test") == "cusum" for r in ordered):
        charts.append(
            {
                "id": "statistic",
                "title": "CUSUM and its threshold",
                "unit": "",
                "series": [
                    {"label": "CUSUM", "values": cusum},
                    {"label": "threshold", "values": thresholds},
                ],
            }
        )
    return {"x": [int(r["evaluated_at"]) for r in ordered], "charts": charts}


async def _examples(visit: Visit, clusters: list[dict[str, Any]]) -> dict[int, list[str]]:
    """Example prompts per cluster, read through the audited body reader."""
    if not visit.may(P.TRACES_READ_BODIES) or visit.gateway.traces is None:
        return {}
    actor = actor_of(visit.request.scope)
    out: dict[int, list[str]] = {}
    for cluster in clusters[:5]:
        texts = list(cluster.get("example_texts") or [])
        for trace_id in cluster.get("examples", []):
            record = await visit.gateway.traces.get(trace_id)
            if record is None:
                continue
            request, _ = await visit.gateway.bodies.read_or_refuse(record, actor)
            try:
                text = last_user_text(orjson.loads(request)) if request else None
            except orjson.JSONDecodeError:
                text = None
            if text:
                texts.append(text[:300])
        out[int(cluster["cluster"])] = texts
    return out


@view(P.DRIFT_READ)
async def monitor_detail(visit: Visit) -> Response:
    m = await _find(visit)
    results = await _service(visit).store.results(m.config.name, limit=HISTORY)
    last = results[0] if results else None
    clusters = list((last or {}).get("detail", {}).get("clusters") or [])
    proposals = await _service(visit).store.proposals(monitor=m.config.name, limit=20)
    context = {
        "m": m,
        "last": last,
        "results": results[:20],
        "chart": p_chart(results, m.config.alpha),
        "clusters": clusters,
        "examples": await _examples(visit, clusters),
        "proposals": proposals,
        "may_manage": visit.may(P.DRIFT_MANAGE),
        "done": visit.request.query_params.get("done"),
    }
    return visit.render("drift_monitor.html", context)


@view(P.DRIFT_MANAGE)
async def decide(visit: Visit) -> Response:
    service = _service(visit)
    pid = visit.request.path_params["proposal_id"]
    found = await service.store.proposal(pid)
    if found is None or service.proposals is None:
        raise NotFoundError(f"There is no drift proposal {pid!r}.")
    names = {m.config.name for m in _visible(visit, await service.monitors())}
    if found["monitor"] not in names:
        raise NotFoundError(f"There is no drift proposal {pid!r}.")
    accept = visit.request.path_params["action"] == "accept"
    await service.proposals.decide(visit.principal, found, accept, actor_of(visit.request.scope))
    root = visit.request.scope.get("root_path", "")
    done = "accepted" if accept else "dismissed"
    return RedirectResponse(f"{root}/drift/{found['monitor']}?done={done}", status_code=303)


PAGE = Page(
    "drift",
    "Drift",
    "/drift",
    any_of=(P.DRIFT_READ,),
    routes=(
        Route("/drift", monitor_list, methods=["GET"]),
        Route("/drift/badge", badge, methods=["GET"]),
        Route("/drift/{name}", monitor_detail, methods=["GET"]),
        Route(
            "/drift/proposals/{proposal_id}/{action:str}",
            decide,
            methods=["POST"],
        ),
    ),
    order=38,
)
