"""`SqlPromptStore`: the registry on SQLAlchemy Core, one implementation for SQLite and
PostgreSQL (tables in opsgate/store/tables/prompts.py).

Writes to one prompt are serialised by making the transaction's first statement a write to
that prompt's row (`UPDATE prompts ... RETURNING`): PostgreSQL then holds the row lock, SQLite
its one write lock, before anything is read. So a push reads the true latest version, and of
two label moves at once the second sees the first's result: last writer wins, both land in the
history with a true `from_version`, and the label row and its history never disagree.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Insert, Row, Table, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.prompts.errors import PromptNotFoundError, PromptStoreUnavailableError
from opsgate.prompts.model import LabelMove, LabelState, PromptInfo, PromptVersion
from opsgate.prompts.spec import PromptSpec
from opsgate.prompts.store import Pushed
from opsgate.store.connections import bump_changes, changes_version, reading, writing
from opsgate.store.dialect import dialect_of
from opsgate.store.tables.prompts import (
    prompt_changes,
    prompt_label_history,
    prompt_labels,
    prompt_versions,
    prompts,
)

HISTORY_LIMIT = 500


def _version(row: Row[Any], team_id: str, name: str) -> PromptVersion:
    m = row._mapping
    return PromptVersion(
        prompt_id=m["prompt_id"],
        team_id=team_id,
        name=name,
        version=int(m["version"]),
        spec=PromptSpec.model_validate(m["content"]),
        content_hash=m["content_hash"],
        message=m["message"],
        author=m["author"],
        created_at=float(m["created_at"]),
    )


def _move(row: Row[Any]) -> LabelMove:
    m = row._mapping
    return LabelMove(
        label=m["label"],
        from_version=m["from_version"],
        to_version=int(m["to_version"]),
        at=float(m["at"]),
        actor=m["actor"],
        seq=int(m["seq"]),
    )


class SqlPromptStore:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._dialect = engine.dialect.name

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return reading(self._engine, PromptStoreUnavailableError)

    def _write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return writing(self._engine, PromptStoreUnavailableError)

    def _insert(self, table: Table) -> Any:
        return dialect_of(self._dialect).insert(table)

    # --- reads -------------------------------------------------------------------------------

    async def version(self) -> int:
        async with self._read() as conn:
            return await changes_version(conn, prompt_changes)

    async def get(self, team_id: str, name: str, version: int) -> PromptVersion | None:
        stmt = _versions(team_id, name).where(prompt_versions.c.version == version)
        async with self._read() as conn:
            row = (await conn.execute(stmt)).first()
        return _version(row, team_id, name) if row else None

    async def by_label(self, team_id: str, name: str, label: str) -> PromptVersion | None:
        stmt = (
            _versions(team_id, name)
            .join(
                prompt_labels,
                and_(
                    prompt_labels.c.prompt_id == prompt_versions.c.prompt_id,
                    prompt_labels.c.version == prompt_versions.c.version,
                ),
            )
            .where(prompt_labels.c.label == label)
        )
        async with self._read() as conn:
            row = (await conn.execute(stmt)).first()
        return _version(row, team_id, name) if row else None

    async def find(self, team_id: str, name: str) -> PromptInfo | None:
        found = await self._infos(and_(prompts.c.team_id == team_id, prompts.c.name == name))
        return found[0] if found else None

    async def list_prompts(self, team_id: str | None) -> list[PromptInfo]:
        where = prompts.c.team_id == team_id if team_id is not None else and_(True)
        return await self._infos(where)

    async def _infos(self, where: ColumnElement[bool]) -> list[PromptInfo]:
        stmt = (
            select(prompts, prompt_versions.c.content)
            .join(
                prompt_versions,
                and_(
                    prompt_versions.c.prompt_id == prompts.c.id,
                    prompt_versions.c.version == prompts.c.latest_version,
                ),
            )
            .where(where)
            .order_by(prompts.c.team_id, prompts.c.name)
        )
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
            ids = [r._mapping["id"] for r in rows]
            labels: dict[str, dict[str, int]] = {i: {} for i in ids}
            if ids:
                found = await conn.execute(
                    select(
                        prompt_labels.c.prompt_id, prompt_labels.c.label, prompt_labels.c.version
                    )
                    .where(prompt_labels.c.prompt_id.in_(ids))
                    .order_by(prompt_labels.c.label)
                )
                for prompt_id, label, version in found:
                    labels[prompt_id][label] = int(version)
        return [
            PromptInfo(
                prompt_id=m["id"],
                team_id=m["team_id"],
                name=m["name"],
                latest_version=int(m["latest_version"]),
                created_at=float(m["created_at"]),
                updated_at=float(m["updated_at"]),
                description=(m["content"] or {}).get("description"),
                labels=labels[m["id"]],
            )
            for m in (r._mapping for r in rows)
        ]

    async def versions(self, team_id: str, name: str) -> list[PromptVersion]:
        stmt = _versions(team_id, name).order_by(prompt_versions.c.version.desc())
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_version(r, team_id, name) for r in rows]

    async def labels(self, team_id: str, name: str) -> list[LabelState]:
        stmt = (
            select(prompt_labels)
            .join(prompts, prompts.c.id == prompt_labels.c.prompt_id)
            .where(prompts.c.team_id == team_id, prompts.c.name == name)
            .order_by(prompt_labels.c.label)
        )
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            LabelState(m["label"], int(m["version"]), float(m["updated_at"]), m["updated_by"])
            for m in (r._mapping for r in rows)
        ]

    async def history(self, team_id: str, name: str, label: str | None = None) -> list[LabelMove]:
        stmt = (
            select(prompt_label_history)
            .join(prompts, prompts.c.id == prompt_label_history.c.prompt_id)
            .where(prompts.c.team_id == team_id, prompts.c.name == name)
            .order_by(prompt_label_history.c.seq.desc())
            .limit(HISTORY_LIMIT)
        )
        if label is not None:
            stmt = stmt.where(prompt_label_history.c.label == label)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_move(r) for r in rows]

    # --- changes -----------------------------------------------------------------------------

    async def push(
        self,
        team_id: str,
        name: str,
        spec: PromptSpec,
        *,
        message: str | None,
        author: str | None,
        labels: tuple[str, ...] = (),
    ) -> Pushed:
        now = self._clock()
        digest = spec.content_hash()
        async with self._write() as conn:
            prompt_id, latest = await self._claim(conn, team_id, name, author, now)
            row = await _row(conn, team_id, name, latest) if latest else None
            created = row is None or row._mapping["content_hash"] != digest
            if created:
                latest += 1
                await conn.execute(
                    prompt_versions.insert().values(
                        prompt_id=prompt_id,
                        version=latest,
                        content=spec.model_dump(mode="json", exclude_none=True),
                        content_hash=digest,
                        message=message,
                        author=author,
                        created_at=now,
                    )
                )
                await conn.execute(
                    update(prompts).where(prompts.c.id == prompt_id).values(latest_version=latest)
                )
                row = await _row(conn, team_id, name, latest)
            assert row is not None
            moves = [
                await self._move(conn, prompt_id, label, latest, author, now) for label in labels
            ]
            if created or any(m.changed for m in moves):
                await _bump(conn)
        return Pushed(_version(row, team_id, name), created, tuple(moves))

    async def _claim(
        self, conn: AsyncConnection, team_id: str, name: str, author: str | None, now: float
    ) -> tuple[str, int]:
        """The prompt's row, made if it is new, and locked (see the module doc)."""
        await conn.execute(
            self._insert(prompts)
            .values(
                id="pr_" + os.urandom(8).hex(),
                team_id=team_id,
                name=name,
                latest_version=0,
                created_at=now,
                updated_at=now,
                created_by=author,
            )
            .on_conflict_do_nothing(index_elements=["team_id", "name"])
        )
        return await _lock(conn, team_id, name, now)

    async def move_label(
        self, team_id: str, name: str, label: str, version: int, actor: str | None
    ) -> LabelMove:
        now = self._clock()
        async with self._write() as conn:
            prompt_id, _ = await _lock(conn, team_id, name, now)
            exists = await conn.scalar(
                select(prompt_versions.c.version).where(
                    prompt_versions.c.prompt_id == prompt_id, prompt_versions.c.version == version
                )
            )
            if exists is None:
                raise PromptNotFoundError(
                    f"prompt {name!r} has no version {version}", param="version"
                )
            move = await self._move(conn, prompt_id, label, version, actor, now)
            if move.changed:
                await _bump(conn)
        return move

    async def _move(
        self,
        conn: AsyncConnection,
        prompt_id: str,
        label: str,
        version: int,
        actor: str | None,
        now: float,
    ) -> LabelMove:
        """Point the label and append the history entry (the prompt row is locked)."""
        current = await conn.scalar(
            select(prompt_labels.c.version).where(
                prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.label == label
            )
        )
        if current == version:  # already there: nothing changes, nothing to record
            return LabelMove(label, current, version, now, actor)
        values = {"version": version, "updated_at": now, "updated_by": actor}
        stmt: Insert = self._insert(prompt_labels).values(
            prompt_id=prompt_id, label=label, **values
        )
        await conn.execute(
            stmt.on_conflict_do_update(  # type: ignore[attr-defined]
                index_elements=["prompt_id", "label"], set_=values
            )
        )
        seq = await conn.scalar(
            prompt_label_history.insert()
            .values(
                prompt_id=prompt_id,
                label=label,
                from_version=current,
                to_version=version,
                at=now,
                actor=actor,
            )
            .returning(prompt_label_history.c.seq)
        )
        return LabelMove(label, current, version, now, actor, int(seq or 0))


async def _row(conn: AsyncConnection, team_id: str, name: str, version: int) -> Row[Any] | None:
    stmt = _versions(team_id, name).where(prompt_versions.c.version == version)
    return (await conn.execute(stmt)).first()


def _versions(team_id: str, name: str) -> Any:
    """Versions of one prompt (a SELECT to narrow further)."""
    return (
        select(prompt_versions)
        .join(prompts, prompts.c.id == prompt_versions.c.prompt_id)
        .where(prompts.c.team_id == team_id, prompts.c.name == name)
    )


async def _lock(conn: AsyncConnection, team_id: str, name: str, now: float) -> tuple[str, int]:
    """Write to the prompt's row first (see the module doc); its id and latest version."""
    row = (
        await conn.execute(
            update(prompts)
            .where(prompts.c.team_id == team_id, prompts.c.name == name)
            .values(updated_at=now)
            .returning(prompts.c.id, prompts.c.latest_version)
        )
    ).first()
    if row is None:
        raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
    return str(row[0]), int(row[1])


async def _bump(conn: AsyncConnection) -> None:
    await conn.execute(bump_changes(prompt_changes))
