"""`SqlExperimentStore`: experiments, their log and bandit assignments on SQLAlchemy Core, one
implementation for SQLite and PostgreSQL (tables in opsgate/store/tables/experiments.py).

Every state change is a compare-and-set (`UPDATE ... WHERE status IN (...)`), written with its
log entry and the change counter in one transaction: of two replicas reaching the same decision
at once, one records it and the other sees that it is taken, so a winner is promoted once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Row, and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opsgate.config.experiments import ExperimentConfig
from opsgate.experiments.errors import ExperimentConflictError, ExperimentStoreUnavailableError
from opsgate.experiments.model import Decision, Event, Experiment, Source, Status
from opsgate.store.connections import bump_changes, changes_version, reading, writing
from opsgate.store.dialect import dialect_of
from opsgate.store.tables.experiments import (
    experiment_assignments,
    experiment_changes,
    experiment_events,
    experiments,
)

EVENT_LIMIT = 2000


def _experiment(row: Row[Any]) -> Experiment:
    m = row._mapping
    state = m["decision"] or {}
    decision = state.get("decision")
    weights = state.get("weights")
    return Experiment(
        spec=ExperimentConfig.model_validate(m["spec"]),
        team_id=m["team_id"],
        source=m["source"],
        status=m["status"],
        slot_start=float(m["slot_start"]),
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
        created_by=m["created_by"],
        decision=Decision.from_json(decision) if decision else None,
        promoted=state.get("promoted"),
        weights=tuple(float(w) for w in weights) if weights else None,
    )


def _state(exp: Experiment) -> dict[str, Any]:
    return {
        "decision": exp.decision.to_json() if exp.decision else None,
        "promoted": exp.promoted,
        "weights": list(exp.weights) if exp.weights is not None else None,
    }


class SqlExperimentStore:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return reading(self._engine, ExperimentStoreUnavailableError)

    def _write(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return writing(self._engine, ExperimentStoreUnavailableError, passing=(IntegrityError,))

    # --- reads -------------------------------------------------------------------------------

    async def version(self) -> int:
        async with self._read() as conn:
            return await changes_version(conn, experiment_changes)

    async def all(self) -> list[Experiment]:
        stmt = select(experiments).order_by(experiments.c.created_at, experiments.c.name)
        async with self._read() as conn:
            return [_experiment(r) for r in await conn.execute(stmt)]

    async def get(self, name: str) -> Experiment | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(experiments).where(experiments.c.name == name))
            ).first()
        return _experiment(row) if row else None

    async def events(self, name: str, *, limit: int = EVENT_LIMIT) -> list[Event]:
        stmt = (
            select(experiment_events)
            .where(experiment_events.c.experiment == name)
            .order_by(experiment_events.c.seq)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = await conn.execute(stmt)
            return [
                Event(r.seq, r.experiment, float(r.at), r.kind, r.actor, dict(r.detail or {}))
                for r in rows
            ]

    async def assignments(self, name: str, units: Sequence[str]) -> dict[str, str]:
        if not units:
            return {}
        t = experiment_assignments
        stmt = select(t.c.unit, t.c.variant).where(
            and_(t.c.experiment == name, t.c.unit.in_(list(units)))
        )
        async with self._read() as conn:
            return {r.unit: r.variant for r in await conn.execute(stmt)}

    # --- writes ------------------------------------------------------------------------------

    async def create(
        self,
        spec: ExperimentConfig,
        *,
        team_id: str,
        source: Source,
        slot_start: float,
        actor: str | None,
    ) -> Experiment:
        now = self._clock()
        exp = Experiment(spec, team_id, source, "running", slot_start, now, now, actor)
        try:
            async with self._write() as conn:
                await conn.execute(
                    experiments.insert().values(
                        name=spec.name,
                        team_id=team_id,
                        source=source,
                        spec=spec.model_dump(mode="json"),
                        status="running",
                        decision=_state(exp),
                        slot_start=slot_start,
                        created_at=now,
                        updated_at=now,
                        created_by=actor,
                    )
                )
                detail = {"source": source, "slot_start": slot_start}
                await self._log(conn, spec.name, "created", actor, detail)
        except IntegrityError:
            raise ExperimentConflictError(
                f"an experiment named {spec.name!r} already exists", param="name"
            ) from None
        return exp

    async def replace_spec(self, name: str, spec: ExperimentConfig, actor: str | None) -> None:
        """A config experiment's definition changed in the file (the docs say: changing
        variants starts a new experiment; this keeps what was stored in step with the file)."""
        async with self._write() as conn:
            await conn.execute(
                update(experiments)
                .where(experiments.c.name == name)
                .values(spec=spec.model_dump(mode="json"), updated_at=self._clock())
            )
            await self._log(conn, name, "config_changed", actor, {})

    async def transition(
        self,
        exp: Experiment,
        *,
        to: Status,
        allowed: Collection[Status],
        kind: str,
        actor: str | None,
        detail: dict[str, Any],
        decision: Decision | None = None,
        promoted: str | None = None,
        weights: Sequence[float] | None = None,
        if_unchanged: bool = False,
    ) -> Experiment | None:
        """Move `exp` to status `to` (and set its decision, promoted variant or weights) if its
        stored status is still one of `allowed` (and, with `if_unchanged`, nothing changed it
        since `exp` was read); None when another writer got there first."""
        chosen = decision or exp.decision
        state = {
            "decision": chosen.to_json() if chosen is not None else None,
            "promoted": promoted if promoted is not None else exp.promoted,
            "weights": list(weights)
            if weights is not None
            else (list(exp.weights) if exp.weights is not None else None),
        }
        now = self._clock()
        where = [experiments.c.name == exp.name, experiments.c.status.in_(list(allowed))]
        if if_unchanged:
            where.append(experiments.c.updated_at == exp.updated_at)
        async with self._write() as conn:
            done = await conn.execute(
                update(experiments).where(*where).values(status=to, decision=state, updated_at=now)
            )
            if done.rowcount != 1:
                return None
            await self._log(conn, exp.name, kind, actor, detail)
        return await self.get(exp.name)

    async def assign(self, name: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Remember bandit assignments; a unit already stored keeps its first variant."""
        if not pairs:
            return
        now = self._clock()
        insert = dialect_of(self._engine.dialect.name).insert(experiment_assignments)
        rows = [{"experiment": name, "unit": u, "variant": v, "assigned_at": now} for u, v in pairs]
        async with self._write() as conn:
            await conn.execute(insert.on_conflict_do_nothing(), rows)

    async def _log(
        self, conn: AsyncConnection, name: str, kind: str, actor: str | None, detail: dict[str, Any]
    ) -> None:
        await conn.execute(
            experiment_events.insert().values(
                experiment=name, at=self._clock(), kind=kind, actor=actor, detail=detail
            )
        )
        await conn.execute(bump_changes(experiment_changes))
