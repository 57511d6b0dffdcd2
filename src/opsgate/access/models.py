"""Admin request bodies (pydantic, unknown fields rejected) and the JSON the admin API returns.

The same models feed validation and the OpenAPI document, so the two cannot drift.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from opsgate.access.principal import BudgetPeriod, BudgetPolicy, Limits, Role, Scope
from opsgate.access.records import KeyRecord, TeamRecord, UserRecord

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: object) -> float:
    """Seconds from `90`, `90s`, `15m`, `24h`, `30d` or `2w`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30d, 24h, 15m or seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError("expected a duration like 30d, 24h, 15m or seconds")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Metadata = Annotated[dict[str, str], Field(max_length=64)]
ModelGlob = Annotated[str, Field(min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsIn(Body):
    """Rate limits; omitted means no limit."""

    rpm: int | None = Field(default=None, gt=0, description="requests per minute")
    tpm: int | None = Field(default=None, gt=0, description="tokens per minute")
    max_parallel: int | None = Field(default=None, gt=0, description="requests in flight")

    def to_limits(self) -> Limits:
        return Limits(rpm=self.rpm, tpm=self.tpm, max_parallel=self.max_parallel)


class BudgetIn(Body):
    """Max spend over a period that resets on schedule (UTC)."""

    max_usd: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    period: BudgetPeriod = "monthly"
    alert_at: list[Annotated[float, Field(gt=0, le=1)]] = Field(default=[0.5, 0.8, 1.0])

    def to_policy(self) -> BudgetPolicy:
        return BudgetPolicy(self.max_usd, self.period, tuple(sorted(set(self.alert_at))))


def scope_of(limits: LimitsIn | None, budget: BudgetIn | None) -> Scope:
    return Scope(
        limits=limits.to_limits() if limits else Limits(),
        budget=budget.to_policy() if budget else None,
    )


class KeyCreate(Body):
    alias: Text | None = None
    role: Role = Field(default=Role.MEMBER, description="see docs/access.md for the table")
    team_id: Slug | None = Field(default=None, description="default: the user's or your team")
    user_id: Slug | None = None
    models: list[ModelGlob] = Field(default=[], description="glob patterns; empty: every model")
    expires_in: Duration | None = Field(default=None, description="e.g. 30d, 12h; or seconds")
    expires_at: datetime | None = None
    metadata: Metadata = Field(default={})
    enabled: bool = True
    limits: LimitsIn | None = None
    budget: BudgetIn | None = None
    end_user_limits: LimitsIn | None = Field(default=None, description="per end user")
    end_user_budget: BudgetIn | None = Field(default=None, description="per end user")


class KeyUpdate(Body):
    """Only the fields sent change; `null` clears an optional one. Role, team and user are
    fixed for a key's life: create a new key to change them."""

    alias: Text | None = None
    models: list[ModelGlob] | None = None
    expires_in: Duration | None = None
    expires_at: datetime | None = None
    metadata: Metadata | None = None
    enabled: bool | None = None
    limits: LimitsIn | None = None
    budget: BudgetIn | None = None
    end_user_limits: LimitsIn | None = None
    end_user_budget: BudgetIn | None = None


class KeyRotate(Body):
    grace: Duration = Field(
        default=86_400.0, description="how long the old key keeps working (default 24h)"
    )


class TeamCreate(Body):
    id: Slug | None = Field(default=None, description="default: generated (team_…)")
    name: Text
    metadata: Metadata = Field(default={})
    limits: LimitsIn | None = None
    budget: BudgetIn | None = None


class TeamUpdate(Body):
    name: Text | None = None
    metadata: Metadata | None = None


class BudgetSet(Body):
    """A team's budget and rate limits; `null` removes them."""

    budget: BudgetIn | None = None
    limits: LimitsIn | None = None


class UserCreate(Body):
    id: Slug | None = Field(default=None, description="default: generated (user_…)")
    name: Text | None = None
    email: Text | None = None
    team_id: Slug | None = None
    metadata: Metadata = Field(default={})


class UserUpdate(Body):
    name: Text | None = None
    email: Text | None = None
    team_id: Slug | None = None
    metadata: Metadata | None = None


# --- what the API answers --------------------------------------------------------------------


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def limits_json(limits: Limits) -> dict[str, int | None]:
    return {"rpm": limits.rpm, "tpm": limits.tpm, "max_parallel": limits.max_parallel}


def budget_json(budget: BudgetPolicy | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {
        "max_usd": str(budget.max_usd),
        "period": budget.period,
        "alert_at": budget.alert_at,
        "since": budget.since,
    }


def key_json(key: KeyRecord, now: float, secret: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "object": "api_key",
        "id": key.id,
        "alias": key.alias,
        "prefix": key.prefix,
        "role": key.role.value,
        "team_id": key.team_id,
        "user_id": key.user_id,
        "models": list(key.allowed_models),
        "metadata": key.metadata,
        "enabled": key.enabled,
        "status": key.status(now),
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "revoked_at": iso(key.revoked_at),
        "rotated_from": key.rotated_from,
        "created_by": key.created_by,
        "limits": limits_json(key.scope.limits),
        "budget": budget_json(key.scope.budget),
        "end_user_limits": limits_json(key.end_user.limits),
        "end_user_budget": budget_json(key.end_user.budget),
    }
    if secret is not None:
        data["key"] = secret
        data["key_notice"] = "This is the only time the key is shown; store it now."
    return data


def team_json(team: TeamRecord) -> dict[str, Any]:
    return {
        "object": "team",
        "id": team.id,
        "name": team.name,
        "metadata": team.metadata,
        "limits": limits_json(team.scope.limits),
        "budget": budget_json(team.scope.budget),
        "created_at": iso(team.created_at),
        "updated_at": iso(team.updated_at),
    }


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "object": "user",
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "team_id": user.team_id,
        "metadata": user.metadata,
        "created_at": iso(user.created_at),
    }


def budget_entry(kind: str, owner_id: str, team_id: str | None, scope: Scope) -> dict[str, Any]:
    return {
        "object": "budget",
        "scope": kind,
        "id": owner_id,
        "team_id": team_id,
        "budget": budget_json(scope.budget),
        "limits": limits_json(scope.limits),
    }
