"""Admin read API over stored alert events: `GET /admin/v1/alerts?since=&kind=&limit=`.

Answers `{"object": "list", "data": [event, ...]}`, newest first; `since` takes what the trace
list takes (ISO-8601, epoch seconds, or an age like `24h`), `kind` an exact kind or a prefix
(`budget.*`), `limit` 1..1000 (default 100).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.alerts.store import MAX_LIST, AlertEventStore
from opsgate.api.admin.runtime import _authorise
from opsgate.api.responses import JSONResponse, error_response
from opsgate.errors import BadRequestError, OpsgateError, ServiceUnavailableError
from opsgate.web.queries import parse_time

StoreOf = Callable[[Request], AlertEventStore | None]
PARAMS = frozenset({"since", "kind", "limit"})


def _limit(raw: str | None) -> int:
    if raw is None:
        return 100
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise BadRequestError(
            f"limit must be an integer from 1 to {MAX_LIST}",
            code="invalid_parameter",
            param="limit",
        )
    return int(raw)


def list_alerts(store_of: StoreOf) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            _authorise(request, request.app.state.gateway)
            unknown = sorted(set(request.query_params) - PARAMS)
            if unknown:
                raise BadRequestError(
                    f"unknown query parameter {unknown[0]!r}; known: kind, limit, since",
                    code="unknown_parameter",
                    param=unknown[0],
                )
            store = store_of(request)
            if store is None:
                raise ServiceUnavailableError("alerts are not configured", code="alerts_disabled")
            params = request.query_params
            since = params.get("since")
            events = await store.list_events(
                since=parse_time(since, time.time(), "since") if since else None,
                kind=params.get("kind") or None,
                limit=_limit(params.get("limit")),
            )
        except OpsgateError as exc:
            return error_response(exc)
        return JSONResponse({"object": "list", "data": [e.to_json() for e in events]})

    return endpoint


def alert_routes(store_of: StoreOf) -> list[Route]:
    """Mount with the app's routes; `store_of(request)` finds the gateway's alert store."""
    return [Route("/admin/v1/alerts", list_alerts(store_of), methods=["GET"])]
