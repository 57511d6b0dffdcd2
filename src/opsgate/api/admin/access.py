"""Admin API for access control (`/admin/v1/keys`, `/users`, `/teams`, `/budgets`), and
`GET /admin/v1/openapi.json`.

Thin handlers: the route table below names each route's permissions (checked before any look-up,
so a 403 says nothing about ids); access/manage.py applies the caller's scope (other tenants'
ids answer 404, exactly like unknown ids).
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.responses import Response

from opsgate.access import models as m
from opsgate.access.manage import AccessAdmin
from opsgate.access.openapi import RouteSpec, document
from opsgate.access.permissions import PERMISSIONS, Permission
from opsgate.api.responses import JSONResponse
from opsgate.web.admin import AdminCall, Handler, admin_route

P = Permission
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def _admin(call: AdminCall) -> AccessAdmin:
    return AccessAdmin(call.gateway.access)


def _listing(data: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"object": "list", "data": data})


def _now() -> float:
    return time.time()


# --- handlers --------------------------------------------------------------------------------


async def whoami(call: AdminCall) -> Response:
    return JSONResponse(
        {
            "object": "principal",
            "key_id": call.who.key_id,
            "role": call.who.role.value,
            "team_id": call.who.team_id,
            "user_id": call.who.user_id,
            "models": list(call.who.allowed_models),
            "is_master": call.who.is_master,
            "permissions": sorted(p.value for p in PERMISSIONS[call.who.role]),
        }
    )


async def openapi(call: AdminCall) -> Response:
    ours = {(s.method, s.path) for s in SPECS}
    others = []
    for route in call.request.app.routes:
        path = _CONVERTOR.sub(r"{\1}", getattr(route, "path", ""))
        if not path.startswith("/admin/"):
            continue
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            if (method, path) not in ours:
                doc = (getattr(route, "endpoint", None).__doc__ or "").strip()
                others.append((method, path, doc.splitlines()[0] if doc else path))
    return JSONResponse(document(SPECS, others))


async def create_key(call: AdminCall) -> Response:
    key, secret = await _admin(call).create_key(call.who, call.body)
    return JSONResponse(m.key_json(key, _now(), secret), status_code=201)


async def list_keys(call: AdminCall) -> Response:
    q = call.query
    include = q.get("include_revoked", "false").lower() in ("1", "true")
    filters = {"team_id": q.get("team_id"), "user_id": q.get("user_id")}
    keys = await _admin(call).list_keys(call.who, filters, include)
    return _listing([m.key_json(k, _now()) for k in keys])


async def get_key(call: AdminCall) -> Response:
    return JSONResponse(
        m.key_json(await _admin(call).get_key(call.who, call.path("key_id")), _now())
    )


async def update_key(call: AdminCall) -> Response:
    key = await _admin(call).update_key(call.who, call.path("key_id"), call.body)
    return JSONResponse(m.key_json(key, _now()))


async def revoke_key(call: AdminCall) -> Response:
    key = await _admin(call).revoke_key(call.who, call.path("key_id"))
    return JSONResponse(m.key_json(key, _now()))


async def rotate_key(call: AdminCall) -> Response:
    new, secret, old = await _admin(call).rotate_key(call.who, call.path("key_id"), call.body)
    data = m.key_json(new, _now(), secret)
    data["replaces"] = m.key_json(old, _now())
    return JSONResponse(data, status_code=201)


async def list_teams(call: AdminCall) -> Response:
    return _listing([m.team_json(t) for t in await _admin(call).list_teams(call.who)])


async def create_team(call: AdminCall) -> Response:
    return JSONResponse(
        m.team_json(await _admin(call).create_team(call.who, call.body)), status_code=201
    )


async def get_team(call: AdminCall) -> Response:
    return JSONResponse(m.team_json(await _admin(call).get_team(call.who, call.path("team_id"))))


async def update_team(call: AdminCall) -> Response:
    team = await _admin(call).update_team(call.who, call.path("team_id"), call.body)
    return JSONResponse(m.team_json(team))


async def delete_team(call: AdminCall) -> Response:
    team_id = call.path("team_id")
    await _admin(call).delete_team(call.who, team_id)
    return JSONResponse({"object": "team", "id": team_id, "deleted": True})


async def get_budget(call: AdminCall) -> Response:
    team = await _admin(call).get_team(call.who, call.path("team_id"))
    return JSONResponse(m.budget_entry("team", team.id, team.id, team.scope))


async def set_budget(call: AdminCall) -> Response:
    team = await _admin(call).set_budget(call.who, call.path("team_id"), call.body)
    return JSONResponse(m.budget_entry("team", team.id, team.id, team.scope))


async def list_budgets(call: AdminCall) -> Response:
    return _listing(await _admin(call).list_budgets(call.who))


async def list_users(call: AdminCall) -> Response:
    found = await _admin(call).list_users(call.who, call.query.get("team_id"))
    return _listing([m.user_json(u) for u in found])


async def create_user(call: AdminCall) -> Response:
    return JSONResponse(
        m.user_json(await _admin(call).create_user(call.who, call.body)), status_code=201
    )


async def get_user(call: AdminCall) -> Response:
    return JSONResponse(m.user_json(await _admin(call).get_user(call.who, call.path("user_id"))))


async def update_user(call: AdminCall) -> Response:
    user = await _admin(call).update_user(call.who, call.path("user_id"), call.body)
    return JSONResponse(m.user_json(user))


async def delete_user(call: AdminCall) -> Response:
    user_id = call.path("user_id")
    await _admin(call).delete_user(call.who, user_id)
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
routes = [
    admin_route(
        s.method, s.path, h, *s.permissions, anyone=not s.permissions, query=s.query, body=s.body
    )
    for s, h in _ROUTES
]
