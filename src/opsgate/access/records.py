"""Stored access rows as typed records, and the JSON form of limits and budgets.

Money stays exact: `max_usd` is written as a decimal string, never a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, cast

from opsgate.access.principal import BudgetPeriod, BudgetPolicy, Limits, Principal, Role, Scope


def limits_to_json(limits: Limits) -> dict[str, int]:
    raw = {"rpm": limits.rpm, "tpm": limits.tpm, "max_parallel": limits.max_parallel}
    return {name: value for name, value in raw.items() if value is not None}


def limits_from_json(data: Any) -> Limits:
    data = data or {}
    return Limits(rpm=data.get("rpm"), tpm=data.get("tpm"), max_parallel=data.get("max_parallel"))


def budget_to_json(budget: BudgetPolicy | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    data: dict[str, Any] = {
        "max_usd": str(budget.max_usd),
        "period": budget.period,
        "alert_at": list(budget.alert_at),
    }
    if budget.since is not None:
        data["since"] = budget.since
    return data


def budget_from_json(data: Any) -> BudgetPolicy | None:
    if not data:
        return None
    return BudgetPolicy(
        max_usd=Decimal(str(data["max_usd"])),
        period=cast(BudgetPeriod, data.get("period", "monthly")),
        alert_at=tuple(float(x) for x in data.get("alert_at", (0.5, 0.8, 1.0))),
        since=float(data["since"]) if data.get("since") is not None else None,
    )


@dataclass(frozen=True, slots=True)
class TeamRecord:
    id: str
    name: str
    created_at: float
    updated_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    scope: Scope = field(default_factory=Scope)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    created_at: float
    name: str | None = None
    email: str | None = None
    team_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


KeyStatus = Literal["active", "expired", "revoked", "disabled"]
"""`active`, `expired`, `revoked` or `disabled`: what a key is at one moment."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key as stored: everything but the secret, which is never kept."""

    id: str
    key_hash: str
    prefix: str
    role: Role
    created_at: float
    alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    allowed_models: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    scope: Scope = field(default_factory=Scope)
    end_user: Scope = field(default_factory=Scope)
    enabled: bool = True
    expires_at: float | None = None
    revoked_at: float | None = None
    rotated_from: str | None = None
    created_by: str | None = None

    def status(self, now: float) -> KeyStatus:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if not self.enabled:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self, team: Scope | None, team_name: str | None = None) -> Principal:
        """The caller this key stands for; `team` is its team's policy (None without a team)."""
        return Principal(
            key_id=self.id,
            role=self.role,
            user_id=self.user_id,
            team_id=self.team_id,
            allowed_models=self.allowed_models,
            key=self.scope,
            team=team or Scope(),
            end_user=self.end_user,
            metadata=dict(self.metadata),
            alias=self.alias,
            team_name=team_name,
        )
