"""Admin operations on keys, teams, users and budgets, each checked against the caller's scope.

The route has already checked the caller's *permissions* (access/permissions.py); this module
checks *where*: a team_admin works only inside their team. Rows outside the caller's scope
answer 404 exactly like rows that do not exist, so ids of other tenants are not confirmed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from opsgate.access.control import AccessService
from opsgate.access.errors import ConflictError
from opsgate.access.keys import display_prefix, generate_key, hash_key, new_id
from opsgate.access.models import (
    BudgetSet,
    KeyCreate,
    KeyRotate,
    KeyUpdate,
    TeamCreate,
    TeamUpdate,
    UserCreate,
    UserUpdate,
    budget_entry,
    scope_of,
)
from opsgate.access.permissions import (
    TEAM_SCOPED,
    Permission,
    in_scope,
    is_global,
    may_assign,
    require,
    scoped_filters,
)
from opsgate.access.principal import BudgetPolicy, Principal, Scope
from opsgate.access.records import (
    KeyRecord,
    TeamRecord,
    UserRecord,
    budget_to_json,
    limits_to_json,
)
from opsgate.access.store import team_row, user_row
from opsgate.errors import BadRequestError, NotFoundError, PermissionDeniedError
from opsgate.store.tables.access import teams, users

_POLICY_FIELDS = ("limits", "budget", "end_user_limits", "end_user_budget")


def _not_found(kind: str, row_id: str) -> NotFoundError:
    return NotFoundError(f"no {kind} with id {row_id!r}", code=f"{kind}_not_found")


def _expiry(body: KeyCreate | KeyUpdate, now: float) -> float | None:
    if body.expires_in is not None and body.expires_at is not None:
        raise BadRequestError("give expires_in or expires_at, not both", param="expires_in")
    if body.expires_in is not None:
        return now + body.expires_in
    if body.expires_at is not None:
        return body.expires_at.timestamp()
    return None


def attached(new: Scope, old: BudgetPolicy | None, now: float) -> Scope:
    """`new` with its budget's `since`: kept from the budget it replaces, else now (a budget
    counts the requests that start after it is attached: docs/access.md)."""
    if new.budget is None:
        return new
    since = old.since if old is not None else now
    return dataclasses.replace(new, budget=dataclasses.replace(new.budget, since=since))


class AccessAdmin:
    def __init__(self, control: AccessService) -> None:
        self.control = control
        self.store = control.store

    def now(self) -> float:
        return self.control.clock()

    # --- keys ----------------------------------------------------------------------------------

    async def create_key(self, who: Principal, body: KeyCreate) -> tuple[KeyRecord, str]:
        if any(getattr(body, name) is not None for name in _POLICY_FIELDS):
            require(who, Permission.BUDGETS_MANAGE)
        if not may_assign(who, body.role):
            raise PermissionDeniedError(
                f"role {who.role.value!r} cannot create {body.role.value!r} keys",
                code="role_not_assignable",
                param="role",
            )
        team_id, user_id = await self._key_owner(who, body.team_id, body.user_id)
        if body.role in TEAM_SCOPED and team_id is None:
            raise BadRequestError(
                f"a {body.role.value} key needs a team_id", code="team_required", param="team_id"
            )
        secret, now = generate_key(), self.now()
        key = KeyRecord(
            id=new_id("key"),
            key_hash=hash_key(secret),
            prefix=display_prefix(secret),
            role=body.role,
            created_at=now,
            alias=body.alias,
            user_id=user_id,
            team_id=team_id,
            allowed_models=tuple(body.models),
            metadata=dict(body.metadata),
            scope=attached(scope_of(body.limits, body.budget), None, now),
            end_user=attached(scope_of(body.end_user_limits, body.end_user_budget), None, now),
            enabled=body.enabled,
            expires_at=_expiry(body, now),
            created_by=who.key_id,
        )
        await self.store.add_key(key)
        await self.control.changed()
        return key, secret

    async def _key_owner(
        self, who: Principal, team_id: str | None, user_id: str | None
    ) -> tuple[str | None, str | None]:
        """The (team, user) a new key belongs to, after checking both exist and are in scope."""
        if not is_global(who):
            team_id = scoped_filters(who, {"team_id": team_id or who.team_id}).get("team_id")
        user = await self.get_user(who, user_id) if user_id else None
        if user is not None:
            if team_id is None:
                team_id = user.team_id
            elif user.team_id not in (None, team_id):
                raise BadRequestError(
                    f"user {user.id!r} belongs to team {user.team_id!r}, not {team_id!r}",
                    code="team_mismatch",
                    param="user_id",
                )
        if team_id is not None:
            await self.get_team(who, team_id)
        return team_id, user_id

    async def list_keys(
        self, who: Principal, requested: Mapping[str, str | None], include_revoked: bool
    ) -> list[KeyRecord]:
        filters = scoped_filters(who, requested)
        return await self.store.list_keys(filters, include_revoked=include_revoked)

    async def get_key(self, who: Principal, key_id: str) -> KeyRecord:
        key = await self.store.get_key(key_id)
        if key is None or not in_scope(
            who, team_id=key.team_id, user_id=key.user_id, key_id=key.id
        ):
            raise _not_found("key", key_id)
        return key

    async def _manageable_key(self, who: Principal, key_id: str) -> KeyRecord:
        """A key the caller may change: in scope, and of a role it could have created (so a
        team admin cannot rotate an admin key that happens to sit in their team)."""
        key = await self.get_key(who, key_id)
        if not may_assign(who, key.role):
            raise PermissionDeniedError(
                f"role {who.role.value!r} cannot manage {key.role.value!r} keys",
                code="role_not_assignable",
            )
        return key

    async def update_key(self, who: Principal, key_id: str, body: KeyUpdate) -> KeyRecord:
        key = await self._manageable_key(who, key_id)
        sent = body.model_fields_set
        if sent & set(_POLICY_FIELDS):
            require(who, Permission.BUDGETS_MANAGE)
        values: dict[str, Any] = {}
        for name in ("alias", "metadata", "enabled"):
            if name in sent:
                values[name] = getattr(body, name)
        if "models" in sent:
            values["allowed_models"] = list(body.models or ())
        if {"expires_in", "expires_at"} & sent:
            values["expires_at"] = _expiry(body, self.now())
        for name in ("limits", "end_user_limits"):
            if name in sent:
                values[name] = limits_to_json(scope_of(getattr(body, name), None).limits)
        for name, old in (("budget", key.scope), ("end_user_budget", key.end_user)):
            if name in sent:
                new = attached(scope_of(None, getattr(body, name)), old.budget, self.now())
                values[name] = budget_to_json(new.budget)
        if values.get("metadata") is None:
            values.pop("metadata", None)
        if values.get("enabled") is None:
            values.pop("enabled", None)
        if not values:
            return key
        updated = await self.store.update_key(key_id, values)
        await self.control.changed()
        return updated or key

    async def revoke_key(self, who: Principal, key_id: str) -> KeyRecord:
        key = await self._manageable_key(who, key_id)
        if key.revoked_at is not None:
            return key
        updated = await self.store.update_key(key_id, {"revoked_at": self.now()})
        await self.control.changed()
        return updated or key

    async def rotate_key(
        self, who: Principal, key_id: str, body: KeyRotate
    ) -> tuple[KeyRecord, str, KeyRecord]:
        """A new key with the same owner, role and policy; the old one works for `grace` more."""
        old = await self._manageable_key(who, key_id)
        now = self.now()
        if old.status(now) in ("revoked", "expired"):
            raise ConflictError(
                f"key {key_id!r} is {old.status(now)}; create a new key instead",
                code="key_inactive",
            )
        secret = generate_key()
        new = KeyRecord(
            id=new_id("key"),
            key_hash=hash_key(secret),
            prefix=display_prefix(secret),
            role=old.role,
            created_at=now,
            alias=old.alias,
            user_id=old.user_id,
            team_id=old.team_id,
            allowed_models=old.allowed_models,
            metadata=dict(old.metadata),
            scope=old.scope,
            end_user=old.end_user,
            enabled=old.enabled,
            expires_at=old.expires_at,
            rotated_from=old.id,
            created_by=who.key_id,
        )
        grace_until = now + body.grace
        if old.expires_at is not None:
            grace_until = min(grace_until, old.expires_at)
        await self.store.rotate_key(old.id, new, grace_until)
        await self.control.changed()
        return new, secret, await self.get_key(who, old.id)

    # --- teams ---------------------------------------------------------------------------------

    async def create_team(self, who: Principal, body: TeamCreate) -> TeamRecord:
        now = self.now()
        team = TeamRecord(
            id=body.id or new_id("team"),
            name=body.name,
            created_at=now,
            updated_at=now,
            metadata=dict(body.metadata),
            scope=attached(scope_of(body.limits, body.budget), None, now),
        )
        await self.store.add(teams, team_row(team))
        await self.control.changed()
        return team

    async def list_teams(self, who: Principal) -> list[TeamRecord]:
        if is_global(who):
            return await self.store.list_teams()
        return await self.store.list_teams(who.team_id) if who.team_id else []

    async def get_team(self, who: Principal, team_id: str) -> TeamRecord:
        team = await self.store.get_team(team_id)
        if team is None or not (is_global(who) or who.team_id == team_id):
            raise _not_found("team", team_id)
        return team

    async def update_team(self, who: Principal, team_id: str, body: TeamUpdate) -> TeamRecord:
        team = await self.get_team(who, team_id)
        sent = body.model_fields_set
        values = {n: getattr(body, n) for n in sent if getattr(body, n) is not None}
        if not values:
            return team
        updated = await self.store.update_team(team_id, values)
        await self.control.changed()
        return updated or team

    async def delete_team(self, who: Principal, team_id: str) -> None:
        await self.get_team(who, team_id)
        n_users, n_keys = await self.store.team_in_use(team_id)
        if n_users or n_keys:
            raise ConflictError(
                f"team {team_id!r} still has {n_users} users and {n_keys} unrevoked keys; "
                "move or delete the users and revoke the keys first",
                code="team_in_use",
            )
        await self.store.delete(teams, team_id)
        await self.control.changed()

    async def set_budget(self, who: Principal, team_id: str, body: BudgetSet) -> TeamRecord:
        team = await self.get_team(who, team_id)
        scope = attached(scope_of(body.limits, body.budget), team.scope.budget, self.now())
        values = {"limits": limits_to_json(scope.limits), "budget": budget_to_json(scope.budget)}
        updated = await self.store.update_team(team_id, values)
        await self.control.changed()
        return updated or team

    async def list_budgets(self, who: Principal) -> list[dict[str, Any]]:
        """Every team and key policy the caller may see (those with a budget or limits)."""
        out = [
            budget_entry("team", t.id, t.id, t.scope)
            for t in await self.list_teams(who)
            if t.scope.budget is not None or not t.scope.limits.empty
        ]
        for k in await self.list_keys(who, {}, include_revoked=False):
            if k.scope.budget is not None or not k.scope.limits.empty:
                out.append(budget_entry("key", k.id, k.team_id, k.scope))
        return out

    # --- users ---------------------------------------------------------------------------------

    async def create_user(self, who: Principal, body: UserCreate) -> UserRecord:
        if body.team_id is not None:
            await self.get_team(who, body.team_id)
        user = UserRecord(
            id=body.id or new_id("user"),
            created_at=self.now(),
            name=body.name,
            email=body.email,
            team_id=body.team_id,
            metadata=dict(body.metadata),
        )
        await self.store.add(users, user_row(user))
        await self.control.changed()
        return user

    async def list_users(self, who: Principal, team_id: str | None) -> list[UserRecord]:
        filters = scoped_filters(who, {"team_id": team_id})
        if "user_id" in filters:
            filters["id"] = filters.pop("user_id")
        if "key_id" in filters:
            return []
        return await self.store.list_users(filters)

    async def get_user(self, who: Principal, user_id: str) -> UserRecord:
        user = await self.store.get_user(user_id)
        if user is None or not in_scope(who, team_id=user.team_id, user_id=user.id):
            raise _not_found("user", user_id)
        return user

    async def update_user(self, who: Principal, user_id: str, body: UserUpdate) -> UserRecord:
        user = await self.get_user(who, user_id)
        if body.team_id is not None:
            await self.get_team(who, body.team_id)
        values = {n: getattr(body, n) for n in body.model_fields_set}
        if values.get("metadata") is None:
            values.pop("metadata", None)
        if not values:
            return user
        updated = await self.store.update_user(user_id, values)
        await self.control.changed()
        return updated or user

    async def delete_user(self, who: Principal, user_id: str) -> None:
        await self.get_user(who, user_id)
        if await self.store.list_keys({"user_id": user_id}):
            raise ConflictError(
                f"user {user_id!r} still has unrevoked keys; revoke them first",
                code="user_in_use",
            )
        await self.store.delete(users, user_id)
        await self.control.changed()
