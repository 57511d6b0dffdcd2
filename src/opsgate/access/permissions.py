"""Roles and what they may do, as data: one table, one scope rule, and the checks that read them.

`PERMISSIONS` is the whole policy; docs/access.md shows the same table and a test holds the two
together. Every admin route names the permissions it needs; a principal whose role lacks one
gets 403 before anything is looked up, so a 403 never says whether an id exists.

Scope (which rows a role may see) is separate from permission (which actions it may take):
admin sees every team; team_admin and viewer see their own team; member and service see only
what their own user (or, with no user, their own key) did.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from opsgate.access.principal import ANONYMOUS, Principal, Role
from opsgate.errors import PermissionDeniedError


class Permission(enum.StrEnum):
    MODELS_CALL = "models:call"
    KEYS_CREATE = "keys:create"
    KEYS_READ = "keys:read"
    KEYS_UPDATE = "keys:update"
    KEYS_REVOKE = "keys:revoke"
    TEAMS_READ = "teams:read"
    TEAMS_MANAGE = "teams:manage"
    USERS_READ = "users:read"
    USERS_MANAGE = "users:manage"
    BUDGETS_READ = "budgets:read"
    BUDGETS_MANAGE = "budgets:manage"
    TRACES_READ = "traces:read"
    TRACES_READ_BODIES = "traces:read_bodies"
    USAGE_READ = "usage:read"
    DEPLOYMENTS_READ = "deployments:read"
    CONFIG_RELOAD = "config:reload"
    END_USERS_EXPORT = "end_users:export"
    END_USERS_ERASE = "end_users:erase"
    AUDIT_READ = "audit:read"
    PROMPTS_READ = "prompts:read"
    PROMPTS_WRITE = "prompts:write"
    """Push versions and move any label but `production`."""
    PROMPTS_PROMOTE = "prompts:promote"
    """Move the `production` label (promote, roll back)."""
    TRACES_REVIEW = "traces:review"
    """The reviewer permission: label traces in review queues. A member holds it only for
    the queues of its team that name it (feedback/review/service.py)."""
    REVIEWS_MANAGE = "reviews:manage"
    """Create, change, fill and delete review queues; review every queue in scope."""
    DATASETS_READ = "datasets:read"
    """List and show datasets; export them (with `traces:read_bodies`)."""
    DATASETS_MANAGE = "datasets:manage"
    """Create datasets and change their rows (each change is a new version)."""
    EVALS_READ = "evals:read"
    """List and show eval runs, their results and comparisons."""
    EVALS_RUN = "evals:run"
    """Start, cancel and resume eval runs (their calls use the caller's own key)."""
    EXPERIMENTS_READ = "experiments:read"
    """List and show experiments with their statistics and decision log."""
    EXPERIMENTS_MANAGE = "experiments:manage"
    """Create, pause, resume, stop and promote experiments (promoting a prompt variant to
    `production` also needs `prompts:promote`)."""
    KNOWLEDGE_READ = "knowledge_bases:read"
    """List knowledge bases and their documents, and search them (as the ACL lets the caller
    see them)."""
    KNOWLEDGE_MANAGE = "knowledge_bases:manage"
    """Create and delete knowledge bases of one's team, ingest and delete documents."""
    DRIFT_READ = "drift:read"
    """List drift monitors, their results and proposals."""
    DRIFT_MANAGE = "drift:manage"
    """Create and delete drift monitors, run them now, accept or dismiss proposals."""
    TUNING_READ = "tuning:read"
    """List and show tuning jobs (status, loss curve, metrics) and registered adapters."""
    TUNING_MANAGE = "tuning:manage"
    """Start (with `datasets:read`: a job reads its dataset's rows), cancel and resume tuning
    jobs; delete adapters."""


P = Permission

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.TEAM_ADMIN: frozenset(
        {
            P.MODELS_CALL,
            P.KEYS_CREATE,
            P.KEYS_READ,
            P.KEYS_UPDATE,
            P.KEYS_REVOKE,
            P.TEAMS_READ,
            P.USERS_READ,
            P.BUDGETS_READ,
            P.BUDGETS_MANAGE,
            P.TRACES_READ,
            P.TRACES_READ_BODIES,
            P.USAGE_READ,
            P.DEPLOYMENTS_READ,
            P.PROMPTS_READ,
            P.PROMPTS_WRITE,
            P.PROMPTS_PROMOTE,
            P.TRACES_REVIEW,
            P.REVIEWS_MANAGE,
            P.DATASETS_READ,
            P.DATASETS_MANAGE,
            P.EVALS_READ,
            P.EVALS_RUN,
            P.EXPERIMENTS_READ,
            P.EXPERIMENTS_MANAGE,
            P.KNOWLEDGE_READ,
            P.KNOWLEDGE_MANAGE,
            P.DRIFT_READ,
            P.DRIFT_MANAGE,
            P.TUNING_READ,
            P.TUNING_MANAGE,
        }
    ),
    Role.MEMBER: frozenset(
        {
            P.MODELS_CALL,
            P.TRACES_READ,
            P.TRACES_READ_BODIES,
            P.PROMPTS_READ,
            P.PROMPTS_WRITE,
            P.TRACES_REVIEW,
            P.EVALS_READ,
            P.EVALS_RUN,
            P.EXPERIMENTS_READ,
            P.KNOWLEDGE_READ,
        }
    ),
    Role.VIEWER: frozenset(
        {
            P.TEAMS_READ,
            P.BUDGETS_READ,
            P.TRACES_READ,
            P.USAGE_READ,
            P.DEPLOYMENTS_READ,
            P.PROMPTS_READ,
            P.EVALS_READ,
            P.EXPERIMENTS_READ,
            P.KNOWLEDGE_READ,
            P.DRIFT_READ,
            P.TUNING_READ,
        }
    ),
    Role.SERVICE: frozenset({P.MODELS_CALL, P.KNOWLEDGE_READ}),
}
"""What each role may do. The scope rule below limits *where*; this table limits *what*."""

TEAM_SCOPED = frozenset({Role.TEAM_ADMIN, Role.VIEWER})
"""Roles that see their whole team; admin sees everything; the rest see only their own."""

ASSIGNABLE: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset(Role),
    Role.TEAM_ADMIN: frozenset({Role.TEAM_ADMIN, Role.MEMBER, Role.VIEWER, Role.SERVICE}),
}
"""The roles a caller may give a key it creates: never more than its own (no escalation)."""


def allowed(principal: Principal, permission: Permission) -> bool:
    return permission in PERMISSIONS[principal.role]


def require(principal: Principal, *needs: Permission) -> None:
    """Raise 403 unless the principal's role has every permission in `needs`."""
    for need in needs:
        if not allowed(principal, need):
            raise PermissionDeniedError(
                f"role {principal.role.value!r} lacks the permission {need.value!r}",
                code="permission_denied",
            )


def is_global(principal: Principal) -> bool:
    """True when the principal's scope is every team (admin, master, open laptop)."""
    return principal.role is Role.ADMIN or principal.is_master or principal is ANONYMOUS


def owning_team(principal: Principal, asked: str | None, what: str) -> str | None:
    """The team a new `what` (e.g. "datasets") belongs to: any asked team for a global principal,
    else the caller's own, and a team outside the caller's scope is refused."""
    if is_global(principal):
        return asked
    if principal.team_id is None:
        raise PermissionDeniedError(f"a key without a team cannot own {what}")
    if asked not in (None, principal.team_id):
        raise PermissionDeniedError(
            f"team_id {asked!r} is outside your scope (team_id {principal.team_id!r})",
            code="outside_scope",
            param="team_id",
        )
    return principal.team_id


def scope_filter(principal: Principal) -> dict[str, str]:
    """The equality filters every read of tenant data must add for this principal.

    `{}` for admin; `{"team_id": t}` for team_admin/viewer; `{"user_id": u}` (or `{"key_id": k}`
    for a key without a user) for member/service. Apply with AND to whatever the caller asked
    for; a caller filter that contradicts it is rejected by `scoped_filters`.
    """
    if is_global(principal):
        return {}
    if principal.role in TEAM_SCOPED and principal.team_id:
        return {"team_id": principal.team_id}
    if principal.role not in TEAM_SCOPED and principal.user_id:
        return {"user_id": principal.user_id}
    return {"key_id": principal.key_id}


def in_scope(
    principal: Principal,
    *,
    team_id: str | None,
    user_id: str | None = None,
    key_id: str | None = None,
) -> bool:
    """Whether one stored row (a trace, a key, a user) lies inside the principal's scope."""
    row = {"team_id": team_id, "user_id": user_id, "key_id": key_id}
    return all(row.get(name) == value for name, value in scope_filter(principal).items())


def scoped_filters(
    principal: Principal,
    requested: Mapping[str, str | None],
    rule: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The caller's filters with the scope (`rule`, default `scope_filter(principal)`) forced
    in; 403 when a filter asks outside it.

    A team A key asking for `team_id=B` is refused rather than given an empty page, so a
    client bug is loud; the message names only the caller's own scope.
    """
    merged = {name: value for name, value in requested.items() if value is not None}
    for name, value in (scope_filter(principal) if rule is None else rule).items():
        asked = merged.get(name)
        if asked is not None and asked != value:
            raise PermissionDeniedError(
                f"{name} {asked!r} is outside your scope ({name} {value!r})",
                code="outside_scope",
                param=name,
            )
        merged[name] = value
    return merged


def may_assign(principal: Principal, role: Role) -> bool:
    if is_global(principal):
        return True
    return role in ASSIGNABLE.get(principal.role, frozenset())
