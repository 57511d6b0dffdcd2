"""`PromptService`: the process-wide prompt registry part — the store, the cache of resolved
versions on the request path, the change feed that keeps every replica's cache honest, the
team scope of every look-up, and the audit entry of every label move.

One per process (the `Gateway` owns it); config reloads keep it. A label move is committed with
the change counter bumped in the same transaction, this replica's cache is cleared at once and
the others hear it on Redis (milliseconds) or from the database poll (within a second), the
same `ChangeFeed` key revocation uses.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.control import DEFAULT_REDIS_PREFIX, REDIS_PREFIX_ENV
from opsgate.access.permissions import Permission, allowed, is_global
from opsgate.access.principal import Principal
from opsgate.access.sync import ChangeFeed
from opsgate.audit import AuditLog, AuditUnavailableError
from opsgate.errors import BadRequestError, PermissionDeniedError
from opsgate.prompts.cache import PromptCache, Resolved
from opsgate.prompts.errors import PromptNotFoundError
from opsgate.prompts.model import (
    NO_TEAM,
    PROTECTED_LABEL,
    LabelMove,
    PromptRef,
    check_label,
    check_name,
)
from opsgate.prompts.spec import PromptSpec
from opsgate.prompts.sql import SqlPromptStore
from opsgate.prompts.store import PromptStore, Pushed

log = logging.getLogger("opsgate.prompts")

LABEL_MOVE = "prompts.label_move"
"""The audit action of every label move (push with labels, promote, rollback)."""


def namespace(who: Principal, team_id: str | None = None) -> str:
    """The team whose prompts `who` reads, writes and serves: the key's team (no team: `NO_TEAM`,
    as for the master key). Admins may name any team; anyone else naming another team is
    answered 404 like an unknown prompt: another team's prompts do not exist for them."""
    own = who.team_id or NO_TEAM
    if is_global(who):
        return team_id if team_id is not None else own
    if team_id is not None and team_id != own:
        raise PromptNotFoundError(f"no prompts in team {team_id!r}", param="team_id")
    return own


def check_may_move(who: Principal, label: str) -> None:
    """Moving `production` needs `prompts:promote`; any other label `prompts:write`."""
    need = Permission.PROMPTS_PROMOTE if label == PROTECTED_LABEL else Permission.PROMPTS_WRITE
    if not allowed(who, need):
        raise PermissionDeniedError(
            f"moving the {label!r} label needs the {need.value!r} permission",
            code="permission_denied",
            param="label",
        )


class PromptService:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        redis_url: str | None = None,
        redis_prefix: str = "opsgate:",
        audit: AuditLog | None = None,
        poll_interval: float = 0.5,
        backstop_interval: float = 1.0,
        store: PromptStore | None = None,
    ) -> None:
        self.engine = engine
        self.store: PromptStore = store or SqlPromptStore(engine)
        self.cache = PromptCache()
        self.audit = audit
        self.feed = ChangeFeed(
            self.store,
            self._on_change,
            redis_url=redis_url,
            prefix=redis_prefix,
            topic="prompts",
            poll_interval=poll_interval,
            backstop_interval=backstop_interval,
        )
        self._loading: dict[tuple[str, str, str], asyncio.Task[Resolved | None]] = {}

    @classmethod
    def from_settings(
        cls,
        engine: AsyncEngine,
        redis_url: str | None,
        audit: AuditLog | None,
        env: Mapping[str, str] = os.environ,
    ) -> PromptService:
        """Redis prefix from `OPSGATE_REDIS_PREFIX`, as the access part's feed reads it."""
        prefix = env.get(REDIS_PREFIX_ENV) or DEFAULT_REDIS_PREFIX
        return cls(engine, redis_url=redis_url, redis_prefix=prefix, audit=audit)

    async def start(self) -> None:
        await self.feed.start()

    async def aclose(self) -> None:
        await self.feed.aclose()
        for task in self._loading.values():
            task.cancel()

    # --- the request path --------------------------------------------------------------------

    async def resolve(self, team_id: str, ref: PromptRef) -> Resolved:
        """The version `ref` names in the team's namespace, from the cache when it can be."""
        if ref.version is not None:
            resolved = self.cache.versions.get((team_id, ref.name, ref.version), False)
            if resolved is False:
                resolved = await self._load(team_id, ref, f"v{ref.version}", self._by_number)
        else:
            assert ref.label is not None
            number = self.cache.label((team_id, ref.name, ref.label))
            resolved = None
            if number is False:
                resolved = await self._load(team_id, ref, f"l{ref.label}", self._by_label)
            elif number is not None:
                resolved = self.cache.versions.get((team_id, ref.name, int(number)), False) or (
                    await self._load(team_id, ref, f"l{ref.label}", self._by_label)
                )
        if not isinstance(resolved, Resolved):
            raise _not_found(ref)
        return resolved

    async def _load(
        self,
        team_id: str,
        ref: PromptRef,
        slot: str,
        fetch: Callable[[str, PromptRef, int], Awaitable[Resolved | None]],
    ) -> Resolved | None:
        """One database read per reference at a time, however many requests miss together."""
        key = (team_id, ref.name, slot)
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch(team_id, ref, self.cache.generation))
            self._loading[key] = task
            task.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(task)

    async def _by_number(self, team_id: str, ref: PromptRef, generation: int) -> Resolved | None:
        assert ref.version is not None
        found = await self.store.get(team_id, ref.name, ref.version)
        resolved = Resolved.of(found) if found is not None else None
        self.cache.put_version((team_id, ref.name, ref.version), resolved, generation)
        return resolved

    async def _by_label(self, team_id: str, ref: PromptRef, generation: int) -> Resolved | None:
        assert ref.label is not None
        found = await self.store.by_label(team_id, ref.name, ref.label)
        if found is None:
            self.cache.put_label((team_id, ref.name, ref.label), None, generation)
            return None
        key = (team_id, ref.name, found.version)
        resolved = self.cache.versions.get(key) or Resolved.of(found)
        self.cache.put_version(key, resolved, generation)
        self.cache.put_label((team_id, ref.name, ref.label), found.version, generation)
        return resolved

    # --- changes -----------------------------------------------------------------------------

    async def changed(self) -> None:
        """After committing a change here: this replica at once, the others through the feed."""
        await self._on_change()
        await self.feed.announce()

    async def _on_change(self) -> None:
        self.cache.clear()

    async def push(
        self,
        who: Principal,
        team_id: str,
        name: str,
        spec: PromptSpec,
        *,
        message: str | None,
        actor: str,
        labels: tuple[str, ...] = (),
    ) -> Pushed:
        """A new version (none when the latest has the same content) and label moves."""
        check_name(name)
        for label in labels:
            check_label(label, "labels")
            check_may_move(who, label)
        spec.compile()  # a syntax error or undeclared variable: 400 before anything is stored
        pushed = await self.store.push(
            team_id, name, spec, message=message, author=actor, labels=labels
        )
        if pushed.created or any(m.changed for m in pushed.moves):
            await self.changed()
        for move in pushed.moves:
            await self._audit(actor, team_id, name, move, "push")
        return pushed

    async def move(
        self, who: Principal, team_id: str, name: str, label: str, version: int, *, actor: str
    ) -> LabelMove:
        check_label(label)
        check_may_move(who, label)
        moved = await self.store.move_label(team_id, name, label, version, actor)
        if moved.changed:
            await self.changed()
        await self._audit(actor, team_id, name, moved, "promote")
        return moved

    async def rollback(
        self, who: Principal, team_id: str, name: str, label: str, *, actor: str
    ) -> LabelMove:
        """Point `label` back where it was before its latest move."""
        check_label(label)
        check_may_move(who, label)
        history = await self.store.history(team_id, name, label)
        if not history:
            if await self.store.find(team_id, name) is None:
                raise PromptNotFoundError(f"no prompt named {name!r}", param="name")
            raise PromptNotFoundError(f"prompt {name!r} has no label {label!r}", param="label")
        previous = history[0].from_version
        if previous is None:
            raise BadRequestError(
                f"label {label!r} of {name!r} has never pointed anywhere else; nothing to roll "
                "back to",
                code="nothing_to_roll_back",
                param="label",
            )
        moved = await self.store.move_label(team_id, name, label, previous, actor)
        await self.changed()
        await self._audit(actor, team_id, name, moved, "rollback")
        return moved

    async def _audit(self, actor: str, team_id: str, name: str, move: LabelMove, via: str) -> None:
        """The move is committed: a failed entry is logged loudly, never turned into an error
        that would misreport it as not done."""
        if self.audit is None or not move.changed:
            return
        detail = {
            "team_id": team_id or None,
            "prompt": name,
            "label": move.label,
            "from_version": move.from_version,
            "to_version": move.to_version,
            "via": via,
        }
        target = f"prompts/{team_id or '-'}/{name}@{move.label}"
        try:
            await self.audit.append(actor, LABEL_MOVE, target, detail)
        except AuditUnavailableError as exc:
            log.error("audit entry for label move %s not written: %s", target, exc)
        except Exception:
            log.exception("audit entry for label move %s not written", target)


def _not_found(ref: PromptRef) -> PromptNotFoundError:
    if ref.version is not None:
        return PromptNotFoundError(
            f"prompt {ref.name!r} has no version {ref.version} (or no such prompt)", param="model"
        )
    return PromptNotFoundError(
        f"prompt {ref.name!r} has no label {ref.label!r} (or no such prompt)", param="model"
    )
