"""Finding what a score is about: a trace (or a session's latest trace), with its owners.

Accepting a score needs one fact from storage: the trace exists and who owns it (team, key),
which is also what the score row copies. Three places answer, cheapest first:

1. `RecentTraces`, a bounded in-memory index the publisher fills with every trace this process
   answers. It covers traces still in the writer's queue (or its journal), so a thumbs-up posted
   a millisecond after the answer is accepted, and costs no database read.
2. One indexed read of the `traces` table for every id of a request not found there (one query
   per request, however many scores it carries); found targets join the index (a trace's
   owners never change).
3. Only for ids found nowhere: the same read again after a short wait (`feedback.trace_wait`),
   since another replica's writer may still hold the trace. Then 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.errors import BadRequestError, NotFoundError
from opsgate.feedback.metrics import ScoreInput
from opsgate.feedback.scores import Target
from opsgate.store.tables.traces import traces
from opsgate.trace import TraceRecord

_COLUMNS = (
    traces.c.trace_id,
    traces.c.session_id,
    traces.c.started_at,
    traces.c.model_requested,
    traces.c.deployment,
    traces.c.key_id,
    traces.c.team_id,
    traces.c.user_id,
    traces.c.end_user,
)
_RETRY_STEP = 0.1


def target_of(record: TraceRecord) -> Target:
    return Target(
        trace_id=record.trace_id,
        session_id=record.session_id,
        started_at=record.started_at,
        model=record.model_requested,
        deployment=record.deployment,
        key_id=record.key_id,
        team_id=record.team_id,
        user_id=record.user_id,
        end_user=record.end_user,
    )


K = TypeVar("K")


def _put(index: dict[K, Target], key: K, target: Target, capacity: int) -> None:
    """Insert as the newest entry; drop the oldest beyond `capacity`."""
    index.pop(key, None)
    index[key] = target
    if len(index) > capacity:
        del index[next(iter(index))]


def _from_row(row: Sequence[Any]) -> Target:
    return Target(*row)


class RecentTraces:
    """The last `capacity` traces this process answered (or looked up), by trace id, and the
    latest trace of each recent session per team. Oldest entries go first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._traces: dict[str, Target] = {}
        self._sessions: dict[tuple[str, str | None], Target] = {}
        self._latest: dict[str, Target] = {}

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, record: TraceRecord) -> None:
        """The publisher's hook: called once per finished trace (cheap, never raises)."""
        if self.capacity:
            self.remember(target_of(record))

    def remember(self, target: Target) -> None:
        if target.trace_id is None or not self.capacity:
            return
        _put(self._traces, target.trace_id, target, self.capacity)
        if target.session_id is not None:
            _put(self._sessions, (target.session_id, target.team_id), target, self.capacity)
            _put(self._latest, target.session_id, target, self.capacity)

    def trace(self, trace_id: str) -> Target | None:
        return self._traces.get(trace_id)

    def session(self, session_id: str, scope: Mapping[str, str | None]) -> Target | None:
        """The latest trace of the session in `scope` (`{}`, `{"team_id": t}` or
        `{"key_id": k}`) that this process knows, or None."""
        if "team_id" in scope:
            return self._sessions.get((session_id, scope["team_id"]))
        latest = self._latest.get(session_id)
        if latest is None or any(getattr(latest, k) != v for k, v in scope.items()):
            return None
        return latest

    def forget_end_user(self, end_user: str) -> int:
        """Drop an erased end user's entries; how many traces went."""
        count = len(self._traces)
        self._traces = {k: t for k, t in self._traces.items() if t.end_user != end_user}
        self._sessions = {k: t for k, t in self._sessions.items() if t.end_user != end_user}
        self._latest = {k: t for k, t in self._latest.items() if t.end_user != end_user}
        return count - len(self._traces)


class TargetFinder:
    """Resolves trace ids and session ids to targets: memory, then the database, then (for
    ids found nowhere) the database once more after `wait` seconds."""

    def __init__(self, engine: AsyncEngine, recent: RecentTraces, *, wait: float) -> None:
        self._engine = engine
        self.recent = recent
        self.wait = wait

    async def traces(self, trace_ids: Collection[str]) -> dict[str, Target]:
        found = {i: t for i in trace_ids if (t := self.recent.trace(i)) is not None}
        missing = [i for i in trace_ids if i not in found]
        waited = 0.0
        while missing:
            for target in await self._read(select(*_COLUMNS).where(traces.c.trace_id.in_(missing))):
                assert target.trace_id is not None
                found[target.trace_id] = target
                self.recent.remember(target)
            missing = [i for i in missing if i not in found]
            if not missing or waited >= self.wait:
                break
            await asyncio.sleep(_RETRY_STEP)
            waited += _RETRY_STEP
            found.update((i, t) for i in missing if (t := self.recent.trace(i)) is not None)
            missing = [i for i in missing if i not in found]
        return found

    async def session(self, session_id: str, scope: Mapping[str, str | None]) -> Target | None:
        """The latest trace of `session_id` within `scope` (`{"team_id": ...}` or
        `{"key_id": ...}`, `{}` for any), or None."""
        hit = self.recent.session(session_id, scope)
        if hit is not None:
            return hit
        stmt = (
            select(*_COLUMNS)
            .where(
                traces.c.session_id == session_id,
                *(traces.c[name] == value for name, value in scope.items()),
            )
            .order_by(traces.c.started_at.desc())
            .limit(1)
        )
        waited = 0.0
        while True:
            rows = await self._read(stmt)
            if rows or waited >= self.wait:
                return rows[0] if rows else None
            await asyncio.sleep(_RETRY_STEP)
            waited += _RETRY_STEP

    async def resolve(self, inputs: Sequence[ScoreInput], scope: Mapping[str, str]) -> list[Target]:
        """What each score of a request is about, in order: its trace (one read for all the
        request's ids not in memory), or for a session metric the session as of its latest
        trace. 404 for an id unknown or outside `scope` (`score_scope`, or a token's team)."""
        trace_ids = {i.trace_id for i in inputs if i.trace_id is not None}
        found = await self.traces(trace_ids) if trace_ids else {}
        sessions: dict[str, Target | None] = {}
        out = []
        for item in inputs:
            trace = None
            if item.trace_id is not None:
                trace = found.get(item.trace_id)
                if trace is None or not _within(trace, scope):
                    raise NotFoundError(
                        f"no trace with id {item.trace_id!r}",
                        code="trace_not_found",
                        param=f"{item.param}trace_id",
                    )
            if item.level == "inference":
                assert trace is not None
                out.append(trace)
                continue
            out.append(await self._session_target(item, trace, scope, sessions))
        return out

    async def _session_target(
        self,
        item: ScoreInput,
        trace: Target | None,
        scope: Mapping[str, str],
        cache: dict[str, Target | None],
    ) -> Target:
        session_id = item.session_id
        if trace is not None:
            if trace.session_id is None:
                raise BadRequestError(
                    f"trace {item.trace_id!r} has no session_id, so metric {item.metric!r} "
                    "(level: session) cannot score its session",
                    code="no_session",
                    param=f"{item.param}trace_id",
                )
            if session_id is not None and session_id != trace.session_id:
                raise BadRequestError(
                    f"trace {item.trace_id!r} belongs to another session",
                    code="session_mismatch",
                    param=f"{item.param}session_id",
                )
            session_id = trace.session_id
        assert session_id is not None
        if session_id not in cache:
            cache[session_id] = trace or await self.session(session_id, scope)
        latest = cache[session_id]
        if latest is None:
            raise NotFoundError(
                f"no session with id {session_id!r}",
                code="session_not_found",
                param=f"{item.param}session_id",
            )
        return Target(
            trace_id=None,
            session_id=session_id,
            started_at=latest.started_at,
            model=latest.model,
            deployment=latest.deployment,
            key_id=latest.key_id,
            team_id=latest.team_id,
            user_id=latest.user_id,
            end_user=latest.end_user,
        )

    async def _read(self, stmt: Select[Any]) -> list[Target]:
        async with self._engine.connect() as conn:
            return [_from_row(row) for row in await conn.execute(stmt)]


def _within(target: Target, scope: Mapping[str, str]) -> bool:
    return all(getattr(target, name) == value for name, value in scope.items())
