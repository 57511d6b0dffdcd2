"""Rolling an adapter out (docs/tuning.md "Serving adapters", "Rolling out").

Two jobs, both about which adapter a model's deployments serve:

- **Loading**: `AdapterRollout.weights` is the registry lookup behind `adapter_loading: vllm`
  (providers/adapter_loading.py): where a registered adapter's weights lie, refused for one
  that is not registered, has no local weights, or was trained on another base than the
  deployment serves.
- **Direct promotion**: `promote` makes a model's adapter-serving deployments serve an adapter
  (every caller, or one team) from now on. It is stored (`tuning_promotions`) and laid over the
  config file each time the router is built (start, reload, a promotion), so a reload keeps it
  and a restart finds it; audited as `tuning.adapter.promote`; a tainted adapter or one on
  another base is refused (409). `demote` takes a promotion back (`tuning.adapter.demote`).

The other way to roll out, an experiment of the adapter against the base, needs no code here:
two model names as variants (the recipe is in the docs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.access.errors import ConflictError
from opsgate.access.permissions import is_global
from opsgate.access.principal import Principal
from opsgate.audit import AuditLog
from opsgate.config.schema import Config, DeploymentConfig, ModelGroupConfig
from opsgate.errors import NotFoundError, PermissionDeniedError
from opsgate.providers.registry import provider_class
from opsgate.store.tables.promotions import tuning_promotions
from opsgate.tuning.base import BaseModelError, base_fingerprint
from opsgate.tuning.store import TuningStore

P = tuning_promotions.c


class PromoteRequest(BaseModel):
    """`POST /admin/v1/adapters/{name}/promote`: serve the adapter on `model` (for `team`, or
    for every caller when omitted)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    team: str | None = Field(default=None, min_length=1)


@dataclass(frozen=True, slots=True)
class Promotion:
    model: str
    team_id: str
    """'' for every caller (the deployments' `adapter`), else that team's `team_adapters`."""
    adapter: str
    promoted_at: float
    promoted_by: str

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "adapter.promotion",
            "model": self.model,
            "team_id": self.team_id or None,
            "adapter": self.adapter,
            "promoted_at": self.promoted_at,
            "promoted_by": self.promoted_by,
        }


def serves_adapters(dep: DeploymentConfig) -> bool:
    cls = provider_class(dep.provider)
    return cls is not None and cls.capabilities.adapters


def base_matches(adapter: Mapping[str, Any], dep: DeploymentConfig) -> bool:
    """Whether the deployment serves the base the adapter was trained on: its `base` (else its
    `model`) is the adapter's base folder, or a folder with the same fingerprint."""
    served = dep.base or dep.model
    here, there = _resolved(served), _resolved(str(adapter["base"]))
    if served == adapter["base"] or (here is not None and here == there):
        return True
    try:
        return (
            Path(served).is_dir() and base_fingerprint(Path(served)) == adapter["base_fingerprint"]
        )
    except BaseModelError:
        return False


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return None


def promoted_config(config: Config, promotions: Iterable[Promotion]) -> Config:
    """The config with each promotion set on its model's adapter-serving deployments."""
    by_model: dict[str, list[Promotion]] = {}
    for p in promotions:
        by_model.setdefault(p.model, []).append(p)
    if not by_model or not any(g.name in by_model for g in config.models):
        return config
    groups = [_promote_group(g, by_model.get(g.name, [])) for g in config.models]
    return config.model_copy(update={"models": groups})


def _promote_group(group: ModelGroupConfig, promotions: list[Promotion]) -> ModelGroupConfig:
    if not promotions:
        return group
    deployments = []
    for dep in group.deployments:
        if serves_adapters(dep):
            adapter, teams = dep.adapter, dict(dep.team_adapters)
            for p in promotions:
                if p.team_id:
                    teams[p.team_id] = p.adapter
                else:
                    adapter = p.adapter
            dep = dep.model_copy(update={"adapter": adapter, "team_adapters": teams})
        deployments.append(dep)
    return group.model_copy(update={"deployments": deployments})


class AdapterRollout:
    """The registry lookup for adapter loading, and direct promotions (stored, applied)."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: TuningStore,
        audit: AuditLog,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._store = store
        self._audit = audit
        self._clock = clock
        self.promotions: list[Promotion] = []
        """As last read from the database (`refresh`) or written here."""
        self.on_change: Callable[[], Awaitable[None]] | None = None
        """Called after a promotion: the gateway builds its router again."""

    # --- loading -----------------------------------------------------------------------------

    async def weights(self, name: str, dep: DeploymentConfig) -> str:
        """The folder of adapter `name` for a server that loads it (`AdapterLookup`)."""
        row = await self._store.adapter(name)
        if row is None:
            raise NotFoundError(
                f"adapter {name!r} (asked for by deployment model {dep.model!r}) is not "
                "registered: train it (POST /admin/v1/tuning/jobs) or fix the deployment",
                code="adapter_not_found",
                param="model",
            )
        if row.get("kind", "lora") != "lora":
            raise ConflictError(
                f"adapter {name!r} is hosted by its provider and has no weights to load",
                code="adapter_not_loadable",
            )
        if not await asyncio.to_thread(base_matches, row, dep):
            raise ConflictError(_mismatch(name, row, dep), code="adapter_base_mismatch")
        return str(row["path"])

    # --- promotion ---------------------------------------------------------------------------

    async def refuse_if_promoted(self, name: str) -> None:
        """409 `adapter_promoted` while a model serves adapter `name` by promotion: deleting
        it would leave that model answering 404 `adapter_not_found` until someone demoted it."""
        serving = [p for p in await self.refresh() if p.adapter == name]
        if serving:
            where = ", ".join(
                f"{p.model} (team {p.team_id})" if p.team_id else p.model for p in serving
            )
            raise ConflictError(
                f"adapter {name!r} is promoted on {where}: demote it first "
                f"(POST /admin/v1/adapters/{name}/demote)",
                code="adapter_promoted",
            )

    async def refresh(self) -> list[Promotion]:
        """Read the stored promotions (at start and reload; another replica may have promoted)."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(tuning_promotions))).mappings().all()
        self.promotions = [Promotion(**{str(k): v for k, v in r.items()}) for r in rows]
        return self.promotions

    async def promote(
        self,
        who: Principal,
        adapter: Mapping[str, Any],
        config: Config,
        *,
        model: str,
        team: str | None,
        actor: str,
    ) -> Promotion:
        """Serve `adapter` (a registry row the caller may see) on `model` for `team` or all."""
        name = str(adapter["name"])
        team_id = self._team(who, team)
        if adapter["tainted_at"] is not None:
            raise ConflictError(
                f"adapter {name!r} is tainted (trained on an erased end user's rows): train "
                "again on the current dataset version",
                code="adapter_tainted",
            )
        group = config.group(model)
        if group is None:
            raise NotFoundError(f"no model {model!r}", code="model_not_found", param="model")
        serving = [d for d in group.deployments if serves_adapters(d)]
        if not serving:
            raise ConflictError(
                f"model {model!r} has no deployment that serves LoRA adapters",
                code="no_adapter_deployment",
            )
        for dep in serving:
            if not await asyncio.to_thread(base_matches, adapter, dep):
                raise ConflictError(_mismatch(name, adapter, dep), code="adapter_base_mismatch")
        promotion = Promotion(model, team_id, name, self._clock(), actor)
        await self._save(promotion)
        await self._audit.append(
            actor,
            "tuning.adapter.promote",
            f"adapter:{name}",
            {"model": model, "team_id": team_id or None},
        )
        await self.refresh()
        if self.on_change is not None:
            await self.on_change()
        return promotion

    async def demote(
        self, who: Principal, name: str, *, model: str, team: str | None, actor: str
    ) -> Promotion:
        """Take back the promotion of adapter `name` on `model` for `team` (or everyone): the
        config file's adapter serves again. 404 when that promotion is not in force."""
        team_id = self._team(who, team)
        await self.refresh()
        found = next(
            (
                p
                for p in self.promotions
                if (p.model, p.team_id, p.adapter) == (model, team_id, name)
            ),
            None,
        )
        if found is None:
            whom = f"team {team_id!r}" if team_id else "everyone"
            raise NotFoundError(
                f"adapter {name!r} is not promoted on model {model!r} for {whom}",
                code="promotion_not_found",
            )
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(tuning_promotions).where(
                    P.model == model, P.team_id == team_id, P.adapter == name
                )
            )
        await self._audit.append(
            actor,
            "tuning.adapter.demote",
            f"adapter:{name}",
            {"model": model, "team_id": team_id or None},
        )
        await self.refresh()
        if self.on_change is not None:
            await self.on_change()
        return found

    @staticmethod
    def _team(who: Principal, team: str | None) -> str:
        """A team role promotes for its own team only; an admin for any team or everyone."""
        if is_global(who):
            return team or ""
        if team is None or team != who.team_id:
            raise PermissionDeniedError(
                f'a team role promotes an adapter for its own team: give "team": {who.team_id!r}',
                code="outside_scope",
                param="team",
            )
        return team

    async def _save(self, p: Promotion) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(tuning_promotions).where(P.model == p.model, P.team_id == p.team_id)
            )
            await conn.execute(
                insert(tuning_promotions).values(
                    model=p.model,
                    team_id=p.team_id,
                    adapter=p.adapter,
                    promoted_at=p.promoted_at,
                    promoted_by=p.promoted_by,
                )
            )


def _mismatch(name: str, adapter: Mapping[str, Any], dep: DeploymentConfig) -> str:
    return (
        f"adapter {name!r} was trained on base {adapter['base']!r}, but deployment "
        f"{dep.id or dep.model!r} serves {dep.base or dep.model!r} (set the deployment's `base` "
        "to the base model folder it serves)"
    )
