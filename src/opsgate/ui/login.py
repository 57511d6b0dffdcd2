"""Logging in and out, and the landing redirect.

The login form posts an API key (or the master key); the response sets the signed session
cookie (HttpOnly, SameSite=Lax, Secure over https, path = the dashboard). Before a session exists
the form is protected by a double-submit token: a random cookie echoed in a hidden field.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.errors import OpsgateError, PermissionDeniedError
from opsgate.gateway import Gateway
from opsgate.ui.forms import field, read_form
from opsgate.ui.principals import login_principal, master_key, session_key_id
from opsgate.ui.sessions import COOKIE, LOGIN_CSRF_COOKIE, SESSION_TTL_S, new_login_token
from opsgate.ui.visit import CSRF_FIELD, Visit, dashboard_of, view
from opsgate.web.auth import PRINCIPAL, authorise


def _safe_next(root: str, target: str | None) -> str:
    """Only a path inside the dashboard: never another site (`//evil`, `https://…`)."""
    home = f"{root}/"
    if not target or not target.startswith(home) or target.startswith("//") or "\\" in target:
        return home
    return target


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=request.scope.get("root_path", "") or "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, next_url: str = ""
) -> Response:
    dashboard = dashboard_of(request)
    gateway: Gateway = request.app.state.gateway
    token = new_login_token()
    response = dashboard.renderer.render(
        request,
        "login.html",
        {
            "error": error,
            "login_csrf": token,
            "next_url": next_url,
            "has_master": master_key(gateway) is not None,
        },
        status=status,
        headers={"cache-control": "no-store"},
    )
    _set_cookie(response, request, LOGIN_CSRF_COOKIE, token, 3600)
    return response


async def login_form(request: Request) -> Response:
    dashboard = dashboard_of(request)
    if await dashboard.open_visit(request) is not None:
        root = request.scope.get("root_path", "")
        return RedirectResponse(_safe_next(root, request.query_params.get("next")), 303)
    return _login_page(request, next_url=request.query_params.get("next", ""))


async def login(request: Request) -> Response:
    dashboard = dashboard_of(request)
    gateway: Gateway = request.app.state.gateway
    try:
        form = await read_form(request)
    except OpsgateError as exc:
        return dashboard.renderer.error(request, exc.status, exc.message)
    next_url = form.get("next", "")
    sent, expected = form.get(CSRF_FIELD, ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return dashboard.renderer.error(
            request, 403, "The login form expired or came from another site; reload and retry."
        )
    try:
        principal = await login_principal(gateway, field(form, "key") or "")
        request.scope[PRINCIPAL] = principal
        authorise(request, anyone=True)  # a key-less login only from this machine
        if not dashboard.registry.visible(principal):
            raise PermissionDeniedError(
                f"A {principal.role.value} key has no dashboard pages; use a viewer, member, "
                "team_admin or admin key."
            )
    except OpsgateError as exc:
        return _login_page(request, error=exc.message, status=exc.status, next_url=next_url)
    _, cookie = dashboard.signer(gateway).issue(session_key_id(principal))
    root = request.scope.get("root_path", "")
    response = RedirectResponse(_safe_next(root, next_url), status_code=303)
    _set_cookie(response, request, COOKIE, cookie, SESSION_TTL_S)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=request.scope.get("root_path", "") or "/")
    return response


@view()
async def logout(visit: Visit) -> Response:
    visit.dashboard.ended.end(visit.session)
    root = visit.request.scope.get("root_path", "")
    response = RedirectResponse(f"{root}/login", status_code=303)
    response.delete_cookie(COOKIE, path=root or "/")
    return response


@view()
async def home(visit: Visit) -> Response:
    """The first page this principal may open (viewers and admins: the overview)."""
    pages = visit.dashboard.registry.visible(visit.principal)
    if not pages:
        return visit.error(403, "Your role has no dashboard pages.")
    root = visit.request.scope.get("root_path", "")
    return RedirectResponse(f"{root}{pages[0].path}", status_code=303)


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
