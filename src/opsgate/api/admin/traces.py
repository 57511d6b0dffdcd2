"""Admin read API over stored traces and usage: `/admin/v1/traces`, `/traces/{id}`, `/usage`.

Thin handlers (parse, call the store, serialise) so the dashboard, the CLI and scripts all read
the same JSON. Every list answers `{"object": "list", "data": [...], "next_cursor": ...}`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, require
from opsgate.access.principal import Principal
from opsgate.access.scoping import may_read_trace, scope_trace_query, scope_usage_query
from opsgate.api.admin.runtime import _authorise
from opsgate.api.responses import JSONResponse, error_response
from opsgate.api.trace_json import trace_detail, trace_summary, usage_json
from opsgate.errors import NotFoundError, OpsgateError, ServiceUnavailableError
from opsgate.gateway import Gateway
from opsgate.store.errors import StoreUnavailableError
from opsgate.store.repository import TraceStore
from opsgate.trace import TraceRecord
from opsgate.web.audit import actor_of
from opsgate.web.queries import check_known, flag, trace_query, usage_query

log = logging.getLogger("opsgate.api")
P = Permission

Handler = Callable[[Request, TraceStore, Principal], Awaitable[Response]]


def admin_endpoint(
    handler: Handler, *needs: Permission
) -> Callable[[Request], Awaitable[Response]]:
    """Authorise, find the trace store, and map every failure onto an OpenAI-shaped error."""

    async def endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        try:
            who = _authorise(request, gateway, *needs)
            if gateway.writer is None:
                raise ServiceUnavailableError(
                    "traces are disabled in the config (traces.enabled: false)",
                    code="traces_disabled",
                )
            return await handler(request, gateway.writer.store, who)
        except OpsgateError as exc:
            return error_response(exc)
        except StoreUnavailableError as exc:
            log.warning("admin read failed, trace store unavailable: %s", exc)
            return error_response(
                ServiceUnavailableError(
                    "the trace database is unavailable; try again", code="store_unavailable"
                )
            )

    return endpoint


# --- serialisation ---------------------------------------------------------------------------


async def list_traces(request: Request, store: TraceStore, who: Principal) -> Response:
    query = scope_trace_query(who, trace_query(request.query_params, datetime.now(UTC).timestamp()))
    page = await store.list_traces(query)
    return JSONResponse(
        {
            "object": "list",
            "data": [trace_summary(r) for r in page.items],
            "next_cursor": page.next_cursor,
        }
    )


async def get_trace(request: Request, store: TraceStore, who: Principal) -> Response:
    params = request.query_params
    check_known(params, frozenset({"include_bodies"}))
    include_bodies = flag(params, "include_bodies")
    trace_id: str = request.path_params["trace_id"]
    if include_bodies:
        require(who, Permission.TRACES_READ_BODIES)
    record = await store.get(trace_id)
    if record is None or not may_read_trace(who, record):
        raise NotFoundError(f"no trace with id {trace_id!r}", code="trace_not_found")
    if include_bodies:  # the sensitive read: audited first, then decrypted (role checked above)
        record = await _with_bodies(request, record)
    return JSONResponse(trace_detail(record, include_bodies=include_bodies))


async def _with_bodies(request: Request, record: TraceRecord) -> TraceRecord:
    gateway: Gateway = request.app.state.gateway
    req, resp = await gateway.bodies.read_or_refuse(record, actor_of(request.scope))
    return dataclasses.replace(record, request_body=req, response_body=resp)


async def usage(request: Request, store: TraceStore, who: Principal) -> Response:
    query, bucket = usage_query(request.query_params, datetime.now(UTC).timestamp())
    query = scope_usage_query(who, query)
    rows = await store.usage(query)
    return JSONResponse(
        {
            "object": "list",
            "data": [usage_json(row, bucket) for row in rows],
            "next_cursor": None,
            "since": query.since,
            "until": query.until,
            "bucket": bucket,
            "group_by": list(query.group_by),
        }
    )


routes = [
    Route("/admin/v1/traces", admin_endpoint(list_traces, P.TRACES_READ), methods=["GET"]),
    Route(
        "/admin/v1/traces/{trace_id:str}",
        admin_endpoint(get_trace, P.TRACES_READ),
        methods=["GET"],
    ),
    Route("/admin/v1/usage", admin_endpoint(usage, P.USAGE_READ), methods=["GET"]),
]
