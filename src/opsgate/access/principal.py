"""Who is calling, and what rules apply to them: the one type every part reads.

Authentication turns a key into a `Principal`; admission (rate limits, budgets), routing (allowed
models), the admin API (role, scope) and traces (key, user, team) all read it and nothing else.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]


class Role(enum.StrEnum):
    ADMIN = "admin"
    """Everything, every team."""
    TEAM_ADMIN = "team_admin"
    """Manage keys and budgets of their team; read their team's data."""
    MEMBER = "member"
    """Call models; read their own traces."""
    VIEWER = "viewer"
    """Read dashboards and usage of their scope; never bodies."""
    SERVICE = "service"
    """Call models only."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits for one scope; None means no limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_parallel is None


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    """Max spend for one scope over a period that resets on schedule (UTC)."""

    max_usd: Decimal
    period: BudgetPeriod = "monthly"
    alert_at: tuple[float, ...] = (0.5, 0.8, 1.0)
    """Fractions of `max_usd` that fire a soft-threshold alert once per period."""
    since: float | None = None
    """Epoch seconds when the budget was attached to its scope: it counts the requests that
    started from then on (and in its current period). None (budgets set before this was
    recorded): every request of the period counts."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The limits and budget that apply at one level (key, team, or each end user)."""

    limits: Limits = field(default_factory=Limits)
    budget: BudgetPolicy | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    """The virtual key's id (never the secret); `master` for the master key."""
    role: Role = Role.SERVICE
    user_id: str | None = None
    team_id: str | None = None
    allowed_models: tuple[str, ...] = ()
    """Glob patterns; empty means every model."""
    key: Scope = field(default_factory=Scope)
    team: Scope = field(default_factory=Scope)
    end_user: Scope = field(default_factory=Scope)
    """Applied to each end user (the `user` field) calling through this key."""
    metadata: dict[str, str] = field(default_factory=dict)
    alias: str | None = None
    """The key's alias and its team's name: labels for people (the dashboard's header), never
    part of an access decision."""
    team_name: str | None = None
    is_master: bool = False

    def may_use(self, model: str) -> bool:
        if not self.allowed_models:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)


MASTER = Principal(key_id="master", role=Role.ADMIN, is_master=True)
ANONYMOUS = Principal(key_id="anonymous", role=Role.ADMIN)
"""The caller when no master key is configured (a laptop): open, and said so at start-up."""
