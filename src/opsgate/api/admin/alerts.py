"""Admin read API over stored alert events: `GET /admin/v1/alerts?since=&kind=&limit=`.

Answers `{"object": "list", "data": [event, ...]}`, newest first; `since` takes what the trace
list takes (ISO-8601, epoch seconds, or an age like `24h`), `kind` an exact kind or a prefix
(`budget.*`), `limit` 1..1000 (default 100).
"""

from __future__ import annotations

import time

from starlette.responses import Response

from opsgate.alerts.store import MAX_LIST
from opsgate.api.responses import JSONResponse
from opsgate.errors import BadRequestError
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.queries import parse_time

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


async def list_alerts(call: AdminCall) -> Response:
    """Stored alert events, newest first"""
    since = call.query.get("since")
    events = await call.gateway.alert_events.list_events(
        since=parse_time(since, time.time(), "since") if since else None,
        kind=call.query.get("kind") or None,
        limit=_limit(call.query.get("limit")),
    )
    return JSONResponse({"object": "list", "data": [e.to_json() for e in events]})


routes = [admin_route("GET", "/admin/v1/alerts", list_alerts, query=PARAMS)]
