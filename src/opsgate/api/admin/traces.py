"""Admin read API over stored traces and usage: `/admin/v1/traces`, `/traces/{id}`, `/usage`.

Thin handlers (parse, call the store, serialise) so the dashboard, the CLI and scripts all read
the same JSON. Every list answers `{"object": "list", "data": [...], "next_cursor": ...}`.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from starlette.responses import Response

from opsgate.access.permissions import Permission, require
from opsgate.access.scoping import may_read_trace, scope_trace_query, scope_usage_query
from opsgate.api.admin.feedback import trace_scores, usage_scores
from opsgate.api.responses import JSONResponse
from opsgate.api.trace_json import trace_detail, trace_summary, usage_json
from opsgate.errors import NotFoundError, ServiceUnavailableError
from opsgate.store.repository import TraceReader
from opsgate.trace import TraceRecord
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.queries import TRACE_PARAMS, USAGE_PARAMS, flag, trace_query, usage_query

P = Permission


def _store(call: AdminCall) -> TraceReader:
    """The stored traces, or 503 `traces_disabled` when traces are off in the config."""
    if call.gateway.traces is None:
        raise ServiceUnavailableError(
            "traces are disabled in the config (traces.enabled: false)", code="traces_disabled"
        )
    return call.gateway.traces


async def list_traces(call: AdminCall) -> Response:
    """Trace summaries in your scope, newest first"""
    store = _store(call)
    query = trace_query(call.query, datetime.now(UTC).timestamp())
    page = await store.list_traces(scope_trace_query(call.who, query))
    return JSONResponse(
        {
            "object": "list",
            "data": [trace_summary(r) for r in page.items],
            "next_cursor": page.next_cursor,
        }
    )


async def get_trace(call: AdminCall) -> Response:
    """One trace with its spans (`include_bodies=true`: its stored bodies, audited)"""
    store = _store(call)
    include_bodies = flag(call.query, "include_bodies")
    trace_id = call.path("trace_id")
    if include_bodies:
        require(call.who, Permission.TRACES_READ_BODIES)
    record = await store.get(trace_id)
    if record is None or not may_read_trace(call.who, record):
        raise NotFoundError(f"no trace with id {trace_id!r}", code="trace_not_found")
    if include_bodies:  # the sensitive read: audited first, then decrypted (role checked above)
        record = await _with_bodies(call, record)
    detail = trace_detail(record, include_bodies=include_bodies)
    detail.update(await trace_scores(call.gateway.feedback, record))
    return JSONResponse(detail)


async def _with_bodies(call: AdminCall, record: TraceRecord) -> TraceRecord:
    req, resp = await call.gateway.bodies.read_or_refuse(record, call.actor)
    return dataclasses.replace(record, request_body=req, response_body=resp)


async def usage(call: AdminCall) -> Response:
    """Usage rollups in your scope, grouped and bucketed"""
    store = _store(call)
    query, bucket = usage_query(call.query, datetime.now(UTC).timestamp())
    query = scope_usage_query(call.who, query)
    rows = await store.usage(query)
    return JSONResponse(
        {
            "object": "list",
            "data": await usage_scores(
                call.gateway.feedback, query, [usage_json(row, bucket) for row in rows]
            ),
            "next_cursor": None,
            "since": query.since,
            "until": query.until,
            "bucket": bucket,
            "group_by": list(query.group_by),
        }
    )


_T = "/admin/v1/traces"
routes = [
    admin_route("GET", _T, list_traces, P.TRACES_READ, query=TRACE_PARAMS),
    admin_route("GET", _T + "/{trace_id:str}", get_trace, P.TRACES_READ, query=("include_bodies",)),
    admin_route("GET", "/admin/v1/usage", usage, P.USAGE_READ, query=USAGE_PARAMS),
]
