"""Teams, users and keys in SQL (SQLite and PostgreSQL through SQLAlchemy Core).

Every change runs in one transaction that also bumps `access_version`, so a replica that polls
the counter sees each change exactly when it is committed. Database failures surface as
`AccessStoreUnavailableError` (503); a duplicate name as `ConflictError` (409).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.access.errors import AccessStoreUnavailableError, ConflictError
from opsgate.access.principal import Role, Scope
from opsgate.access.records import (
    KeyRecord,
    TeamRecord,
    UserRecord,
    budget_from_json,
    budget_to_json,
    limits_from_json,
    limits_to_json,
)
from opsgate.store.connections import bump_changes, changes_version, reading, writing
from opsgate.store.tables.access import access_version, api_keys, teams, users

_NOUNS = {"teams": "team", "users": "user", "api_keys": "key"}
KeyAndTeam = tuple[KeyRecord, Scope | None, str | None]
"""A key, its team's policy and its team's name (None when it has no team, or it is gone)."""


def _scope(limits: Any, budget: Any) -> Scope:
    return Scope(limits=limits_from_json(limits), budget=budget_from_json(budget))


def key_row(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "key_hash": key.key_hash,
        "prefix": key.prefix,
        "alias": key.alias,
        "role": key.role.value,
        "user_id": key.user_id,
        "team_id": key.team_id,
        "allowed_models": list(key.allowed_models),
        "metadata": key.metadata,
        "limits": limits_to_json(key.scope.limits),
        "budget": budget_to_json(key.scope.budget),
        "end_user_limits": limits_to_json(key.end_user.limits),
        "end_user_budget": budget_to_json(key.end_user.budget),
        "enabled": key.enabled,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "rotated_from": key.rotated_from,
        "created_by": key.created_by,
        "created_at": key.created_at,
    }


def key_from_row(row: Row[Any]) -> KeyRecord:
    m = row._mapping
    return KeyRecord(
        id=m["id"],
        key_hash=m["key_hash"],
        prefix=m["prefix"],
        role=Role(m["role"]),
        created_at=m["created_at"],
        alias=m["alias"],
        user_id=m["user_id"],
        team_id=m["team_id"],
        allowed_models=tuple(m["allowed_models"] or ()),
        metadata=dict(m["metadata"] or {}),
        scope=_scope(m["limits"], m["budget"]),
        end_user=_scope(m["end_user_limits"], m["end_user_budget"]),
        enabled=bool(m["enabled"]),
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        rotated_from=m["rotated_from"],
        created_by=m["created_by"],
    )


def team_row(team: TeamRecord) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "metadata": team.metadata,
        "limits": limits_to_json(team.scope.limits),
        "budget": budget_to_json(team.scope.budget),
        "created_at": team.created_at,
        "updated_at": team.updated_at,
    }


def team_from_row(row: Row[Any]) -> TeamRecord:
    m = row._mapping
    return TeamRecord(
        id=m["id"],
        name=m["name"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=dict(m["metadata"] or {}),
        scope=_scope(m["limits"], m["budget"]),
    )


def user_row(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "team_id": user.team_id,
        "metadata": user.metadata,
        "created_at": user.created_at,
    }


def user_from_row(row: Row[Any]) -> UserRecord:
    m = row._mapping
    return UserRecord(
        id=m["id"],
        created_at=m["created_at"],
        name=m["name"],
        email=m["email"],
        team_id=m["team_id"],
        metadata=dict(m["metadata"] or {}),
    )


def _where(table: Table, filters: Mapping[str, str | None]) -> ColumnElement[bool]:
    clauses = [table.c[name] == value for name, value in filters.items() if value is not None]
    return and_(True, *clauses)


class AccessStore:
    """The one place access rows are read and written."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return reading(self._engine, AccessStoreUnavailableError)

    @contextlib.asynccontextmanager
    async def _change(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that also bumps the change counter other replicas poll."""
        try:
            async with writing(
                self._engine, AccessStoreUnavailableError, passing=(IntegrityError,)
            ) as conn:
                yield conn
                await conn.execute(bump_changes(access_version))
        except IntegrityError:
            raise ConflictError("that id or name is already taken") from None

    # --- the hot path's reads ----------------------------------------------------------------

    async def version(self) -> int:
        async with self._read() as conn:
            return await changes_version(conn, access_version)

    async def has_keys(self) -> bool:
        async with self._read() as conn:
            return bool(await conn.scalar(select(exists().select_from(api_keys))))

    async def key_by_hash(self, key_hash: str) -> KeyAndTeam | None:
        """The key with this hash, its team's policy and name, or None."""
        return await self._key_and_team(api_keys.c.key_hash == key_hash)

    async def key_by_id(self, key_id: str) -> KeyAndTeam | None:
        """The key with this id, its team's policy and name (None: no such team), or None."""
        return await self._key_and_team(api_keys.c.id == key_id)

    async def _key_and_team(self, where: ColumnElement[bool]) -> KeyAndTeam | None:
        """One key and its team's policy in one round trip (an outer join: a key whose team
        is gone still answers, with None for the team)."""
        stmt = (
            select(
                api_keys,
                teams.c.id.label("team_row_id"),
                teams.c.limits.label("team_limits"),
                teams.c.budget.label("team_budget"),
                teams.c.name.label("team_name"),
            )
            .select_from(api_keys.outerjoin(teams, teams.c.id == api_keys.c.team_id))
            .where(where)
        )
        async with self._read() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            return None
        m = row._mapping
        team = _scope(m["team_limits"], m["team_budget"]) if m["team_row_id"] else None
        return key_from_row(row), team, m["team_name"]

    # --- keys ----------------------------------------------------------------------------------

    async def add_key(self, key: KeyRecord) -> None:
        async with self._change() as conn:
            await conn.execute(api_keys.insert().values(key_row(key)))

    async def get_key(self, key_id: str) -> KeyRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return key_from_row(row) if row else None

    async def list_keys(
        self, filters: Mapping[str, str | None], *, include_revoked: bool = False
    ) -> list[KeyRecord]:
        stmt = select(api_keys).where(_where(api_keys, filters))
        if not include_revoked:
            stmt = stmt.where(api_keys.c.revoked_at.is_(None))
        async with self._read() as conn:
            rows = (await conn.execute(stmt.order_by(api_keys.c.created_at, api_keys.c.id))).all()
        return [key_from_row(r) for r in rows]

    async def update_key(self, key_id: str, values: Mapping[str, Any]) -> KeyRecord | None:
        async with self._change() as conn:
            await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return key_from_row(row) if row else None

    async def rotate_key(self, old_id: str, new: KeyRecord, old_expires_at: float) -> None:
        """Add the replacement and shorten the old key's life to the grace period, at once."""
        async with self._change() as conn:
            await conn.execute(api_keys.insert().values(key_row(new)))
            await conn.execute(
                update(api_keys).where(api_keys.c.id == old_id).values(expires_at=old_expires_at)
            )

    # --- teams and users -----------------------------------------------------------------------

    async def add(self, table: Table, row: Mapping[str, Any]) -> None:
        try:
            async with self._change() as conn:
                await conn.execute(table.insert().values(dict(row)))
        except ConflictError:
            raise await self._clash(table, row) from None

    async def _clash(self, table: Table, row: Mapping[str, Any]) -> ConflictError:
        """Which unique value of `row` is taken, in words (never the database's own)."""
        noun = _NOUNS.get(table.name, "row")
        for column in table.columns:
            value = row.get(column.name)
            if value is None or not (column.primary_key or column.unique):
                continue
            async with self._read() as conn:
                taken = await conn.scalar(select(exists().where(column == value)))
            if taken:
                how = (
                    f"named {value!r}" if column.name == "name" else f"with {column.name} {value!r}"
                )
                return ConflictError(
                    f"a {noun} {how} already exists", code=f"{noun}_exists", param=column.name
                )
        return ConflictError(f"that {noun}'s id or name is already taken", code=f"{noun}_exists")

    async def get_team(self, team_id: str) -> TeamRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(select(teams).where(teams.c.id == team_id))).first()
        return team_from_row(row) if row else None

    async def list_teams(self, team_id: str | None = None) -> list[TeamRecord]:
        stmt = select(teams).where(_where(teams, {"id": team_id})).order_by(teams.c.name)
        async with self._read() as conn:
            return [team_from_row(r) for r in (await conn.execute(stmt)).all()]

    async def update_team(self, team_id: str, values: Mapping[str, Any]) -> TeamRecord | None:
        try:
            async with self._change() as conn:
                await conn.execute(
                    update(teams)
                    .where(teams.c.id == team_id)
                    .values(updated_at=time.time(), **values)
                )
                row = (await conn.execute(select(teams).where(teams.c.id == team_id))).first()
        except ConflictError:
            raise await self._clash(teams, {"name": values.get("name")}) from None
        return team_from_row(row) if row else None

    async def team_in_use(self, team_id: str) -> tuple[int, int]:
        """(users, unrevoked keys) that still name this team."""
        async with self._read() as conn:
            n_users = await conn.scalar(
                select(func.count()).select_from(users).where(users.c.team_id == team_id)
            )
            n_keys = await conn.scalar(
                select(func.count())
                .select_from(api_keys)
                .where(api_keys.c.team_id == team_id, api_keys.c.revoked_at.is_(None))
            )
        return int(n_users or 0), int(n_keys or 0)

    async def delete(self, table: Table, row_id: str) -> bool:
        async with self._change() as conn:
            result = await conn.execute(delete(table).where(table.c.id == row_id))
        return bool(result.rowcount)

    async def get_user(self, user_id: str) -> UserRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return user_from_row(row) if row else None

    async def list_users(self, filters: Mapping[str, str | None]) -> list[UserRecord]:
        stmt = select(users).where(_where(users, filters)).order_by(users.c.id)
        async with self._read() as conn:
            return [user_from_row(r) for r in (await conn.execute(stmt)).all()]

    async def update_user(self, user_id: str, values: Mapping[str, Any]) -> UserRecord | None:
        async with self._change() as conn:
            await conn.execute(update(users).where(users.c.id == user_id).values(**values))
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return user_from_row(row) if row else None
