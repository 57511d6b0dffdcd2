"""`view(...)`: wraps a page handler so that it only ever runs for a logged-in principal that may
use it, with the CSRF token checked on every POST, and every failure shown as an HTML page.

Order of checks: session (else to the login page) → CSRF on unsafe methods (forged: 403) →
permissions (403 before any look-up, as in the admin API) → the handler. Errors the parts raise
(`OpsgateError`: 400, 403, 404, 409, 503 ...) become the error page with their status, and a
backend that is down (`web.outage`) a 503 page.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from opsgate.access.permissions import Permission, allowed, scope_filter
from opsgate.access.principal import Principal
from opsgate.errors import OpsgateError, ServiceUnavailableError
from opsgate.gateway import Gateway
from opsgate.store.repository import TraceReader
from opsgate.ui.forms import Form, read_form
from opsgate.ui.registry import PageRegistry
from opsgate.ui.render import Renderer
from opsgate.ui.sessions import EndedSessions, Session, SessionSigner
from opsgate.web.audit import actor_of, append_or_log
from opsgate.web.auth import PRINCIPAL, authorise
from opsgate.web.outage import OUTAGES, unavailable

log = logging.getLogger("opsgate.ui")

DASHBOARD = "opsgate.dashboard"
"""Where the dashboard app leaves itself in the ASGI scope for handlers."""
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Dashboard(Protocol):
    """What a visit needs of the dashboard app (`ui.dashboard.Dashboard`, which builds visits:
    naming it here would make the two modules import each other)."""

    registry: PageRegistry
    renderer: Renderer
    ended: EndedSessions

    def signer(self, gateway: Gateway) -> SessionSigner: ...

    async def open_visit(self, request: Request) -> Visit | None: ...


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.scope[DASHBOARD]
    return dashboard


@dataclass(slots=True)
class Visit:
    """One authenticated request to a page: who is looking, and how to answer them."""

    request: Request
    dashboard: Dashboard
    gateway: Gateway
    principal: Principal
    session: Session
    csrf: str
    form: Form = field(default_factory=Form)

    def trace_store(self) -> TraceReader:
        """The stored traces, or 503 when traces are off in the config."""
        if self.gateway.traces is None:
            raise ServiceUnavailableError(
                "Traces are disabled in the config (traces.enabled: false).",
                code="traces_disabled",
            )
        return self.gateway.traces

    def may(self, *needs: Permission) -> bool:
        return all(allowed(self.principal, need) for need in needs)

    def render(
        self,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        pages = self.dashboard.registry.visible(self.principal)
        root = self.request.scope.get("root_path", "")
        here = self.request.url.path.removeprefix(root) or "/"
        base = {
            "who": self.principal,
            "scope": scope_label(self.principal),
            "nav": [(p, p.holds(here)) for p in pages],
            "csrf": self.csrf,
            "may": self.may,
            "P": Permission,
        }
        return self.dashboard.renderer.render(
            self.request, template, {**base, **(context or {})}, status=status, headers=headers
        )

    def error(self, status: int, message: str) -> Response:
        return self.dashboard.renderer.error(self.request, status, message)


def scope_label(principal: Principal) -> str:
    """Which rows this principal sees, in words: `everything`, `team ML platform`, `user ada`,
    `this key` (the header names the key and its team already)."""
    rule = scope_filter(principal)
    if not rule:
        return "everything"
    if "team_id" in rule:
        return f"team {principal.team_name or rule['team_id']}"
    if "user_id" in rule:
        return f"user {rule['user_id']}"
    return "this key"


Handler = Callable[[Visit], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def login_redirect(request: Request) -> Response:
    """To the login page, coming back here afterwards (htmx follows `HX-Redirect`)."""
    root = request.scope.get("root_path", "")
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{root}/login?next={quote(back, safe='/')}"
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def view(
    *needs: Permission, any_of: tuple[Permission, ...] = (), audit: str | None = None
) -> Callable[[Handler], Endpoint]:
    """Make a page handler an endpoint that needs every permission in `needs` (and, given
    `any_of`, at least one of those). `audit` names the action a POST performs (`keys.create`):
    each attempt by a logged-in principal is written to the audit log with its status, as the
    admin API's audit layer does for `/admin/` changes."""

    def wrap(handler: Handler) -> Endpoint:
        async def serve(request: Request, dashboard: Dashboard) -> Response:
            visit = await dashboard.open_visit(request)
            if visit is None:
                return login_redirect(request)
            request.scope[PRINCIPAL] = visit.principal
            if request.method not in _SAFE:
                visit.form = await read_form(request)
                token = request.headers.get(CSRF_HEADER) or visit.form.get(CSRF_FIELD)
                if not _csrf_ok(visit, token):
                    return visit.error(403, _FORGED)
            authorise(request, *needs, anyone=True)
            if any_of and not any(allowed(visit.principal, p) for p in any_of):
                return visit.error(403, "Your role may not open this page.")
            return await handler(visit)

        async def endpoint(request: Request) -> Response:
            dashboard = dashboard_of(request)
            try:
                response = await serve(request, dashboard)
            except OpsgateError as exc:
                response = dashboard.renderer.error(request, exc.status, exc.message)
            except OUTAGES as exc:  # a database, Redis or cache backend is down
                log.warning("dashboard page failed, backend unavailable: %s", exc)
                message = unavailable(exc).message
                response = dashboard.renderer.error(request, 503, message[0].upper() + message[1:])
            except Exception:  # the last resort: logged for operators, a plain page for people
                log.exception("dashboard error on %s %s", request.method, request.url.path)
                response = dashboard.renderer.error(
                    request, 500, "The dashboard hit an internal error; it has been logged."
                )
            if audit is not None and request.method not in _SAFE and PRINCIPAL in request.scope:
                await _audit(request, audit, response.status_code)
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


def _csrf_ok(visit: Visit, token: str | None) -> bool:
    """The sent token against the one this visit's session holds (constant time; bytes, as
    `compare_digest` refuses non-ASCII text and a forged token may hold any)."""
    return token is not None and hmac.compare_digest(
        visit.csrf.encode(), token.encode("utf-8", "replace")
    )


async def _audit(request: Request, action: str, status: int) -> None:
    """One audit entry for a dashboard change; a failure is logged, not shown (it happened)."""
    gateway: Gateway = request.app.state.gateway
    detail = {"method": request.method, "status": status, "via": "dashboard"}
    await append_or_log(gateway.audit, actor_of(request.scope), action, request.url.path, detail)


_FORGED = (
    "The form's security token is missing or wrong (an old tab, or a request from another "
    "site). Reload the page and try again."
)
