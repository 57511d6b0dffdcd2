"""Admin API for access control (`/admin/v1/keys`, `/users`, `/teams`, `/budgets`), the
middleware that authenticates every `/admin/` request, and `GET /admin/v1/openapi.json`.

Thin handlers: the route table below names each route's permissions (checked before any look-up,
so a 403 says nothing about ids); access/manage.py applies the caller's scope (other tenants'
ids answer 404, exactly like unknown ids).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from opsgate.access import models as m
from opsgate.access.manage import AccessAdmin
from opsgate.access.openapi import RouteSpec, document
from opsgate.access.permissions import PERMISSIONS, Permission
from opsgate.access.principal import Principal
from opsgate.api.responses import JSONResponse, error_response
from opsgate.errors import (
    BadRequestError,
    OpsgateError,
)
from opsgate.gateway import Gateway
from opsgate.pipeline.context import RequestContext
from opsgate.web.auth import LOOPBACK, PRINCIPAL, authorise
from opsgate.web.body import read_json, validated

P = Permission
_MAX_BODY = 1024 * 1024
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


class AccessMiddleware:
    """Authenticates every `/admin/` request once; handlers read the principal synchronously."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        gateway: Gateway = scope["app"].state.gateway
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        trusted = gateway.runtime.config.settings.master_key is None and bool(
            client and client[0] in LOOPBACK
        )
        try:
            scope[PRINCIPAL] = await gateway.runtime.auth.resolve(
                RequestContext(headers=headers), trusted=trusted
            )
        except OpsgateError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _body(request: Request, model: type[BaseModel]) -> Any:
    return validated(model, await read_json(request, _MAX_BODY))


def _query(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise BadRequestError(
            f"unknown query parameter {unknown[0]!r}; known: {', '.join(allowed) or 'none'}",
            code="unknown_parameter",
            param=unknown[0],
        )
    return dict(request.query_params)


def _listing(data: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"object": "list", "data": data})


Handler = Callable[[Request, Principal, AccessAdmin, Any], Awaitable[Response]]


def _endpoint(spec: RouteSpec, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        try:
            who = authorise(request, *spec.permissions, anyone=not spec.permissions)
            _query(request, spec.query)
            body = await _body(request, spec.body) if spec.body is not None else None
            if gateway.access is None:
                raise BadRequestError("access control is not configured", code="no_access")
            return await handler(request, who, AccessAdmin(gateway.access), body)
        except OpsgateError as exc:
            return error_response(exc)

    return endpoint


def _now() -> float:
    return time.time()


# --- handlers --------------------------------------------------------------------------------


async def whoami(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    return JSONResponse(
        {
            "object": "principal",
            "key_id": who.key_id,
            "role": who.role.value,
            "team_id": who.team_id,
            "user_id": who.user_id,
            "models": list(who.allowed_models),
            "is_master": who.is_master,
            "permissions": sorted(p.value for p in PERMISSIONS[who.role]),
        }
    )


async def openapi(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    ours = {(s.method, s.path) for s in SPECS}
    others = []
    for route in request.app.routes:
        path = _CONVERTOR.sub(r"{\1}", getattr(route, "path", ""))
        if not path.startswith("/admin/"):
            continue
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            if (method, path) not in ours:
                doc = (getattr(route, "endpoint", None).__doc__ or "").strip()
                others.append((method, path, doc.splitlines()[0] if doc else path))
    return JSONResponse(document(SPECS, others))


async def create_key(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    key, secret = await admin.create_key(who, body)
    return JSONResponse(m.key_json(key, _now(), secret), status_code=201)


async def list_keys(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    q = request.query_params
    include = q.get("include_revoked", "false").lower() in ("1", "true")
    filters = {"team_id": q.get("team_id"), "user_id": q.get("user_id")}
    keys = await admin.list_keys(who, filters, include)
    return _listing([m.key_json(k, _now()) for k in keys])


async def get_key(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    return JSONResponse(m.key_json(await admin.get_key(who, request.path_params["key_id"]), _now()))


async def update_key(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    key = await admin.update_key(who, request.path_params["key_id"], body)
    return JSONResponse(m.key_json(key, _now()))


async def revoke_key(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    key = await admin.revoke_key(who, request.path_params["key_id"])
    return JSONResponse(m.key_json(key, _now()))


async def rotate_key(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    new, secret, old = await admin.rotate_key(who, request.path_params["key_id"], body)
    data = m.key_json(new, _now(), secret)
    data["replaces"] = m.key_json(old, _now())
    return JSONResponse(data, status_code=201)


async def list_teams(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    return _listing([m.team_json(t) for t in await admin.list_teams(who)])


async def create_team(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    return JSONResponse(m.team_json(await admin.create_team(who, body)), status_code=201)


async def get_team(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    return JSONResponse(m.team_json(await admin.get_team(who, request.path_params["team_id"])))


async def update_team(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    team = await admin.update_team(who, request.path_params["team_id"], body)
    return JSONResponse(m.team_json(team))


async def delete_team(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    team_id = request.path_params["team_id"]
    await admin.delete_team(who, team_id)
    return JSONResponse({"object": "team", "id": team_id, "deleted": True})


async def get_budget(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    team = await admin.get_team(who, request.path_params["team_id"])
    return JSONResponse(m.budget_entry("team", team.id, team.id, team.scope))


async def set_budget(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    team = await admin.set_budget(who, request.path_params["team_id"], body)
    return JSONResponse(m.budget_entry("team", team.id, team.id, team.scope))


async def list_budgets(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    return _listing(await admin.list_budgets(who))


async def list_users(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    found = await admin.list_users(who, request.query_params.get("team_id"))
    return _listing([m.user_json(u) for u in found])


async def create_user(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    return JSONResponse(m.user_json(await admin.create_user(who, body)), status_code=201)


async def get_user(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    return JSONResponse(m.user_json(await admin.get_user(who, request.path_params["user_id"])))


async def update_user(request: Request, who: Principal, admin: AccessAdmin, body: Any) -> Response:
    user = await admin.update_user(who, request.path_params["user_id"], body)
    return JSONResponse(m.user_json(user))


async def delete_user(request: Request, who: Principal, admin: AccessAdmin, _: Any) -> Response:
    user_id = request.path_params["user_id"]
    await admin.delete_user(who, user_id)
    return JSONResponse({"object": "user", "id": user_id, "deleted": True})


# --- the route table -------------------------------------------------------------------------

_K, _T, _U = "/admin/v1/keys", "/admin/v1/teams", "/admin/v1/users"
_ROUTES: list[tuple[RouteSpec, Handler]] = [
    (RouteSpec("GET", "/admin/v1/whoami", "The calling key: role, scope, permissions"), whoami),
    (RouteSpec("GET", "/admin/v1/openapi.json", "This document"), openapi),
    (RouteSpec("POST", _K, "Create a key (the secret is shown once)", (P.KEYS_CREATE,),
               m.KeyCreate, status=201, tags=("keys",)), create_key),
    (RouteSpec("GET", _K, "List keys in your scope", (P.KEYS_READ,),
               query=("team_id", "user_id", "include_revoked"), tags=("keys",)), list_keys),
    (RouteSpec("GET", _K + "/{key_id}", "One key (never its secret)", (P.KEYS_READ,),
               tags=("keys",)), get_key),
    (RouteSpec("PATCH", _K + "/{key_id}", "Change alias, models, expiry, policy, enabled",
               (P.KEYS_UPDATE,), m.KeyUpdate, tags=("keys",)), update_key),
    (RouteSpec("POST", _K + "/{key_id}/revoke", "Revoke now, on every replica",
               (P.KEYS_REVOKE,), tags=("keys",)), revoke_key),
    (RouteSpec("POST", _K + "/{key_id}/rotate", "New secret; the old one works for `grace`",
               (P.KEYS_CREATE, P.KEYS_REVOKE), m.KeyRotate, status=201, tags=("keys",)),
     rotate_key),
    (RouteSpec("GET", _T, "List teams in your scope", (P.TEAMS_READ,), tags=("teams",)),
     list_teams),
    (RouteSpec("POST", _T, "Create a team", (P.TEAMS_MANAGE,), m.TeamCreate, status=201,
               tags=("teams",)), create_team),
    (RouteSpec("GET", _T + "/{team_id}", "One team", (P.TEAMS_READ,), tags=("teams",)),
     get_team),
    (RouteSpec("PATCH", _T + "/{team_id}", "Rename a team or change its metadata",
               (P.TEAMS_MANAGE,), m.TeamUpdate, tags=("teams",)), update_team),
    (RouteSpec("DELETE", _T + "/{team_id}", "Delete an unused team", (P.TEAMS_MANAGE,),
               tags=("teams",)), delete_team),
    (RouteSpec("GET", _T + "/{team_id}/budget", "A team's budget and limits",
               (P.BUDGETS_READ,), tags=("budgets",)), get_budget),
    (RouteSpec("PUT", _T + "/{team_id}/budget", "Set a team's budget and limits",
               (P.TEAMS_MANAGE, P.BUDGETS_MANAGE), m.BudgetSet, tags=("budgets",)), set_budget),
    (RouteSpec("GET", "/admin/v1/budgets", "Team and key budgets in your scope",
               (P.BUDGETS_READ,), tags=("budgets",)), list_budgets),
    (RouteSpec("GET", _U, "List users in your scope", (P.USERS_READ,), query=("team_id",),
               tags=("users",)), list_users),
    (RouteSpec("POST", _U, "Create a user", (P.USERS_MANAGE,), m.UserCreate, status=201,
               tags=("users",)), create_user),
    (RouteSpec("GET", _U + "/{user_id}", "One user", (P.USERS_READ,), tags=("users",)),
     get_user),
    (RouteSpec("PATCH", _U + "/{user_id}", "Change a user", (P.USERS_MANAGE,), m.UserUpdate,
               tags=("users",)), update_user),
    (RouteSpec("DELETE", _U + "/{user_id}", "Delete a user without keys", (P.USERS_MANAGE,),
               tags=("users",)), delete_user),
]  # fmt: skip

SPECS: list[RouteSpec] = [spec for spec, _ in _ROUTES]
routes = [Route(s.path, _endpoint(s, h), methods=[s.method]) for s, h in _ROUTES]
