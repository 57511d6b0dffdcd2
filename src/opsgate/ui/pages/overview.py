"""Overview: traffic, latency, errors, tokens, cost and cache for a time range and scope, as
charts, plus the top models, keys and end users by cost. Reads only usage rollups."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.access.scoping import scope_usage_query
from opsgate.errors import BadRequestError
from opsgate.feedback.scores import RollupRow
from opsgate.store.usage import UsageDimension, UsageQuery, combine
from opsgate.ui import hallucination, satisfaction
from opsgate.ui.registry import Page
from opsgate.ui.usage_charts import (
    DEFAULT_WINDOW,
    ONE_BUCKET,
    WINDOWS,
    Window,
    charts,
    headline,
    top,
    window_from,
)
from opsgate.ui.visit import Visit, view

P = Permission
FILTERS: tuple[UsageDimension, ...] = ("model", "team_id", "key_id", "end_user")
_MAX_FILTER = 200


def _filters(visit: Visit) -> dict[UsageDimension, str]:
    found: dict[UsageDimension, str] = {}
    for name in FILTERS:
        value = (visit.request.query_params.get(name) or "").strip()
        if len(value) > _MAX_FILTER:
            raise BadRequestError(f"{name} is longer than {_MAX_FILTER} characters.")
        if value:
            found[name] = value
    return found


@dataclass(frozen=True, slots=True)
class Selection:
    """The range and filters a request asked for, checked."""

    window: Window
    since: float
    until: float
    filters: dict[UsageDimension, str]

    def query(self, visit: Visit, step: int, *group: UsageDimension) -> UsageQuery:
        """A rollup over the selection, narrowed to the principal's scope (403 outside it)."""
        query = UsageQuery(self.since, self.until, step, group, self.filters)
        return scope_usage_query(visit.principal, query)

    @property
    def params(self) -> str:
        return str(QueryParams({"range": self.window.name, **self.filters}))


def _selection(visit: Visit) -> Selection:
    window = window_from(visit, DEFAULT_WINDOW)
    since, until = window.bounds(time.time())
    return Selection(window, since, until, _filters(visit))


@view(P.USAGE_READ)
async def overview(visit: Visit) -> Response:
    chosen = _selection(visit)
    store, window = visit.trace_store(), chosen.window
    series, models, keys = await asyncio.gather(
        store.usage(chosen.query(visit, window.step)),
        store.usage(chosen.query(visit, ONE_BUCKET, "model")),
        store.usage(chosen.query(visit, ONE_BUCKET, "key_id")),
    )
    return visit.render(
        "overview.html",
        {
            "windows": WINDOWS.values(),
            "window": window,
            "filters": chosen.filters,
            "query": chosen.params,
            "since": chosen.since,
            "until": chosen.until,
            "headline": headline(combine(series), chosen.until - chosen.since),
            "chart_data": charts(series, chosen.since, chosen.until, window.step),
            "top_models": top(models, "model"),
            "top_keys": top(keys, "key_id"),
            "models": sorted(visit.gateway.model_groups),
        },
    )


@view(P.USAGE_READ)
async def top_end_users(visit: Visit) -> Response:
    """The end-user table, loaded after the page: only the per-minute rollup keeps end users,
    so over days this read is the slow one and must not hold the page up."""
    chosen = _selection(visit)
    rows = await visit.trace_store().usage(chosen.query(visit, ONE_BUCKET, "end_user"))
    layout = "_fragment.html" if visit.request.headers.get("hx-request") else "base.html"
    return visit.render(
        "top_end_users.html",
        {"layout": layout, "rows": top(rows, "end_user"), "window": chosen.window},
    )


@view(P.USAGE_READ)
async def satisfaction_panel(visit: Visit) -> Response:
    """Satisfaction per model from the score rollup, loaded after the page like the end users."""
    chosen = _selection(visit)
    filters = {str(name): value for name, value in chosen.filters.items()}
    query = satisfaction.query(visit.principal, chosen.since, chosen.until, filters)
    rows = await visit.gateway.feedback.store.rollup(query)
    declared = visit.gateway.runtime.config.feedback.metrics
    layout = "_fragment.html" if visit.request.headers.get("hx-request") else "base.html"
    return visit.render(
        "satisfaction.html",
        {"layout": layout, "panel": satisfaction.panel(rows, declared), "window": chosen.window},
    )


@view(P.USAGE_READ)
async def hallucination_panel(visit: Visit) -> Response:
    """The hallucination rate per model from online scores, loaded after the page."""
    chosen = _selection(visit)
    filters = {str(name): value for name, value in chosen.filters.items()}
    config = visit.gateway.runtime.config
    shown = hallucination.metrics(config.evals, config.feedback.metrics)
    rows: list[RollupRow] = []
    if shown:
        query = hallucination.query(visit.principal, chosen.since, chosen.until, filters)
        rows = await visit.gateway.feedback.store.rollup(query)
    layout = "_fragment.html" if visit.request.headers.get("hx-request") else "base.html"
    panel = hallucination.panel(rows, shown, time.time())
    return visit.render(
        "hallucination.html", {"layout": layout, "panel": panel, "window": chosen.window}
    )


PAGE = Page(
    "overview",
    "Overview",
    "/overview",
    any_of=(P.USAGE_READ,),
    routes=(
        Route("/overview", overview, methods=["GET"]),
        Route("/overview/end-users", top_end_users, methods=["GET"]),
        Route("/overview/satisfaction", satisfaction_panel, methods=["GET"]),
        Route("/overview/hallucination", hallucination_panel, methods=["GET"]),
    ),
    order=10,
)
