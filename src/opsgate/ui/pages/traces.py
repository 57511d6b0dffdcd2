"""Traces: a filterable, cursor-paginated table, and one trace with its spans as a timeline.

Filters use the admin API's parameter names and parser (`web.queries.trace_query`), so the table and
`GET /admin/v1/traces` always agree; the caller's scope is forced in the same way.
"""

from __future__ import annotations

import time

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, require
from opsgate.access.scoping import may_read_trace, scope_trace_query
from opsgate.errors import NotFoundError
from opsgate.store.queries import CACHE_FILTERS, STATUSES
from opsgate.ui.bodies import read_bodies
from opsgate.ui.registry import Page
from opsgate.ui.timeline import layout
from opsgate.ui.visit import Visit, view
from opsgate.web.queries import trace_query

P = Permission
PAGE_SIZE = "50"
SINCE_CHOICES = (
    ("", "any time"),
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
)
_FORM_FIELDS = (
    "since",
    "model",
    "status",
    "cache",
    "key_id",
    "team_id",
    "end_user",
    "session_id",
    "deployment",
    "min_duration_ms",
)


def _filled(params: QueryParams) -> QueryParams:
    """The query without blank fields (an empty select means "any")."""
    return QueryParams([(k, v.strip()) for k, v in params.multi_items() if v.strip()])


@view(P.TRACES_READ)
async def trace_list(visit: Visit) -> Response:
    params = _filled(visit.request.query_params)
    sized = (
        params if "limit" in params else QueryParams([*params.multi_items(), ("limit", PAGE_SIZE)])
    )
    query = scope_trace_query(visit.principal, trace_query(sized, time.time()))
    page = await visit.trace_store().list_traces(query)
    without_cursor = [(k, v) for k, v in params.multi_items() if k != "cursor"]
    return visit.render(
        "traces.html",
        {
            "traces": page.items,
            "filters": {name: params.get(name, "") for name in _FORM_FIELDS},
            "metadata_filters": params.getlist("metadata"),
            "next_query": (
                str(QueryParams([*without_cursor, ("cursor", page.next_cursor)]))
                if page.next_cursor
                else None
            ),
            "first_query": str(QueryParams(without_cursor)) if "cursor" in params else None,
            "since_choices": SINCE_CHOICES,
            "statuses": STATUSES,
            "cache_choices": CACHE_FILTERS,
            "models": sorted(visit.gateway.model_groups),
        },
    )


@view(P.TRACES_READ)
async def trace_detail(visit: Visit) -> Response:
    trace_id: str = visit.request.path_params["trace_id"]
    show_bodies = visit.request.query_params.get("bodies") in ("1", "true")
    if show_bodies:
        require(visit.principal, P.TRACES_READ_BODIES)  # 403 before the look-up
    record = await visit.trace_store().get(trace_id)
    if record is None or not may_read_trace(visit.principal, record):
        raise NotFoundError(f"There is no trace with id {trace_id!r}.")
    bodies = await read_bodies(visit.request, visit.gateway, record) if show_bodies else None
    scores = await visit.gateway.feedback.store.for_traces([record.trace_id])
    return visit.render(
        "trace.html",
        {
            "t": record,
            "timeline": layout(record),
            "bodies": bodies,
            "scores": scores,
            "has_bodies": record.request_body is not None or record.response_body is not None,
        },
    )


PAGE = Page(
    "traces",
    "Traces",
    "/traces",
    any_of=(P.TRACES_READ,),
    routes=(
        Route("/traces", trace_list, methods=["GET"]),
        Route("/traces/{trace_id:str}", trace_detail, methods=["GET"]),
    ),
    order=20,
)
