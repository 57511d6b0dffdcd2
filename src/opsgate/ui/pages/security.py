"""Security: the breach alerts (alerts/security.py) that fired, newest first, with how their
delivery went, and the last scheduled verification of the audit chain. Admins only (the
alerts cover every team): it needs `audit:read`."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.alerts.events import AlertEvent
from opsgate.alerts.security import SECURITY_KINDS
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view

P = Permission
SHOWN = 100
"""Alerts shown, newest first (the admin API's `GET /admin/v1/alerts` pages further)."""


async def recent_security_alerts(visit: Visit, limit: int = SHOWN) -> list[AlertEvent]:
    store = visit.gateway.alert_events
    found = await store.list_events(kind="security.*", limit=limit)
    for kind in SECURITY_KINDS:
        if not kind.startswith("security."):
            found.extend(await store.list_events(kind=kind, limit=limit))
    found.sort(key=lambda e: (e.alert.created_at, e.alert.id), reverse=True)
    return found[:limit]


@view(P.AUDIT_READ)
async def security_page(visit: Visit) -> Response:
    compliance = visit.gateway.compliance
    events = await recent_security_alerts(visit)
    return visit.render(
        "security.html",
        {
            "events": events,
            "kinds": SECURITY_KINDS,
            "watch": compliance.audit_watch,
            "config": compliance.security.config,
            "raised": compliance.security.raised,
        },
    )


PAGE = Page(
    "security",
    "Security",
    "/security",
    any_of=(P.AUDIT_READ,),
    routes=(Route("/security", security_page, methods=["GET"]),),
    order=90,
)
