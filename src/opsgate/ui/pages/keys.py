"""Keys & budgets: the keys in the caller's scope with their limits and budget use, creating a
key (its secret shown once), revoking one, and every budget the caller may see.

All changes go through `AccessAdmin`, exactly as the admin API's do: the same scope checks,
the same role rules (a team admin cannot mint admin keys), the same change feed to replicas.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.access.budgets.model import BudgetScope, BudgetStatus
from opsgate.access.limits.model import ScopeKind, ScopeRef
from opsgate.access.manage import AccessAdmin
from opsgate.access.permissions import ASSIGNABLE, Permission, is_global
from opsgate.access.principal import BudgetPolicy, Role
from opsgate.access.records import KeyRecord
from opsgate.errors import BadRequestError, OpsgateError
from opsgate.ui.key_form import FIELDS, parse_key_form
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view

log = logging.getLogger("opsgate.ui")
P = Permission


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A budget and what its current period has used, for a meter."""

    kind: str
    owner: str
    team_id: str | None
    policy: BudgetPolicy
    status: BudgetStatus | None
    """None when the ledger could not be read (Redis down): shown as unknown."""

    @property
    def fraction(self) -> float | None:
        if self.status is None or self.status.scope.max_micros <= 0:
            return None
        return min(1.0, (self.status.spent + self.status.held) / self.status.scope.max_micros)


def _admin(visit: Visit) -> AccessAdmin:
    if visit.gateway.access is None:
        raise BadRequestError("access control is not configured", code="no_access")
    return AccessAdmin(visit.gateway.access)


async def _use(
    visit: Visit, kind: ScopeKind, owner: str, team: str | None, policy: BudgetPolicy
) -> BudgetUse:
    scope = BudgetScope(ScopeRef(kind, owner), policy)
    try:
        status: BudgetStatus | None = await visit.gateway.ledger.status(scope)
    except Exception as exc:  # the page still shows the budget, only the meter is missing
        log.warning("budget status of %s unavailable: %s", scope.ref.label, exc)
        status = None
    return BudgetUse(kind, owner, team, policy, status)


async def _budgets(visit: Visit, admin: AccessAdmin, keys: list[KeyRecord]) -> list[BudgetUse]:
    """Every budget in the caller's scope, as `AccessAdmin.list_budgets` lists them (teams by
    name, then unrevoked keys in `keys`' order), from the keys the page already loaded."""
    found: list[tuple[ScopeKind, str, str | None, BudgetPolicy]] = [
        ("team", t.id, t.id, t.scope.budget)
        for t in await admin.list_teams(visit.principal)
        if t.scope.budget is not None
    ]
    found += [
        ("key", k.id, k.team_id, k.scope.budget)
        for k in keys
        if k.revoked_at is None and k.scope.budget is not None
    ]
    return list(await asyncio.gather(*(_use(visit, *entry) for entry in found)))


def _assignable(visit: Visit) -> list[str]:
    if is_global(visit.principal):
        return [role.value for role in Role]
    return [r.value for r in Role if r in ASSIGNABLE.get(visit.principal.role, frozenset())]


async def _page(visit: Visit, *, status: int = 200, **extra: Any) -> Response:
    admin = _admin(visit)
    show_all = visit.request.query_params.get("all") in ("1", "true")
    keys: list[KeyRecord] = []
    if visit.may(P.KEYS_READ) or visit.may(P.BUDGETS_READ):  # one read serves both tables
        keys = await admin.list_keys(visit.principal, {}, include_revoked=show_all)
    budgets = await _budgets(visit, admin, keys) if visit.may(P.BUDGETS_READ) else []
    context: dict[str, Any] = {
        "keys": keys if visit.may(P.KEYS_READ) else [],
        "key_budgets": {b.owner: b for b in budgets if b.kind == "key"},
        "budgets": budgets,
        "show_all": show_all,
        "now": admin.now(),
        "roles": _assignable(visit),
        "periods": ("daily", "weekly", "monthly", "total"),
        "form": dict.fromkeys(FIELDS, ""),
        "errors": [],
        "revoked": visit.request.query_params.get("revoked"),
    }
    return visit.render("keys.html", {**context, **extra}, status=status)


@view(any_of=(P.KEYS_READ, P.BUDGETS_READ))
async def keys_page(visit: Visit) -> Response:
    return await _page(visit)


@view(P.KEYS_CREATE, audit="keys.create")
async def create_key(visit: Visit) -> Response:
    body, errors = parse_key_form(visit.form)
    echoed = {name: visit.form.get(name, "") for name in FIELDS}
    if body is None:
        return await _page(visit, status=422, form=echoed, errors=errors)
    try:
        key, secret = await _admin(visit).create_key(visit.principal, body)
    except OpsgateError as exc:
        if exc.status >= 500:
            raise
        return await _page(visit, status=exc.status, form=echoed, errors=[exc.message])
    return visit.render("key_created.html", {"key": key, "secret": secret}, status=201)


@view(P.KEYS_REVOKE, audit="keys.revoke")
async def revoke_key(visit: Visit) -> Response:
    key = await _admin(visit).revoke_key(visit.principal, visit.request.path_params["key_id"])
    root = visit.request.scope.get("root_path", "")
    return RedirectResponse(f"{root}/keys?revoked={key.id}", status_code=303)


PAGE = Page(
    "keys",
    "Keys & budgets",
    "/keys",
    any_of=(P.KEYS_READ, P.BUDGETS_READ),
    routes=(
        Route("/keys", keys_page, methods=["GET"]),
        Route("/keys", create_key, methods=["POST"]),
        Route("/keys/{key_id:str}/revoke", revoke_key, methods=["POST"]),
    ),
    order=30,
)
