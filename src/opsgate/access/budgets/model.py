"""Budgets: the most a key, a team or an end user may spend over a period that resets (UTC).

Concurrency-safe by reservation: before a call the ledger holds its worst-case cost in every
scope at once (all or nothing), and after the call it swaps the hold for the real cost. So
however many requests run together, settled spend stays within the budget unless a request
costs more than its hold (a model that ignores `max_tokens`, an underestimated prompt): the
overshoot is bounded by those requests' excess, i.e. by what is in flight.

Counters are named by period (`d2026-03-14`, `w2026-W11`, `m2026-03`, `total`), so they reset
on schedule by name, with no job. Backends: `MemoryBudgetLedger` (one process),
`RedisBudgetLedger` (every replica). Both are rebuilt from the database: a counter that is
missing (cold start, Redis flushed, a process restarted) is seeded off the request path from
`usage_minute` (see `budgets_seed`).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from opsgate.access.limits.model import ScopeRef, end_user_of, scope_ref
from opsgate.access.principal import BudgetPeriod, BudgetPolicy, Principal
from opsgate.accounting.cost import MICROS_PER_USD, micros_to_usd
from opsgate.alerts.events import Alert
from opsgate.errors import BadRequestError, RateLimitError

PERIODS: tuple[BudgetPeriod, ...] = ("daily", "weekly", "monthly", "total")
AlertSink = Callable[[Alert], object]


@dataclass(frozen=True, slots=True)
class Period:
    """One occurrence of a budget period: its counter name and its UTC bounds."""

    name: BudgetPeriod
    key: str
    start: float
    end: float | None
    """None for `total`, which never resets."""


@functools.lru_cache(maxsize=256)
def _period(name: BudgetPeriod, day: int) -> Period:
    date = dt.date(1970, 1, 1) + dt.timedelta(days=day)

    def epoch(d: dt.date) -> float:
        return float((d - dt.date(1970, 1, 1)).days * 86_400)

    if name == "daily":
        return Period(name, f"d{date.isoformat()}", epoch(date), epoch(date) + 86_400)
    if name == "weekly":
        monday = date - dt.timedelta(days=date.weekday())
        year, week, _ = date.isocalendar()
        return Period(name, f"w{year}-W{week:02d}", epoch(monday), epoch(monday) + 7 * 86_400)
    if name == "monthly":
        first = date.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return Period(name, f"m{first:%Y-%m}", epoch(first), epoch(following))
    return Period(name, "total", 0.0, None)


def period_of(name: BudgetPeriod, now: float) -> Period:
    """The period occurrence `now` (epoch seconds) falls in."""
    return _period(name, int(now // 86_400))


def budget_period(policy: BudgetPolicy, now: float) -> Period:
    """What `policy` counts at `now`: its period occurrence, starting no earlier than the
    budget was attached. A budget attached within the period gets a counter of its own
    (`m2026-03+<ms>`), so one detached and attached again starts from nothing."""
    period = period_of(policy.period, now)
    since = policy.since
    if since is None or since <= period.start:
        return period
    return Period(period.name, f"{period.key}+{round(since * 1000)}", since, period.end)


@dataclass(frozen=True, slots=True)
class BudgetScope:
    ref: ScopeRef
    policy: BudgetPolicy

    @property
    def max_micros(self) -> int:
        return int(self.policy.max_usd * MICROS_PER_USD)


def budget_scopes(
    principal: Principal, end_user: str | None = None, started: float | None = None
) -> list[BudgetScope]:
    """The scopes whose budgets apply to this caller; given `started` (the request's start),
    only budgets attached by then (a request already under way when a budget is attached is
    not counted by it, live or after a restart)."""
    found: list[BudgetScope] = []

    def add(ref: ScopeRef, policy: BudgetPolicy | None) -> None:
        if policy is None:
            return
        if started is not None and policy.since is not None and policy.since > started:
            return
        found.append(BudgetScope(ref, policy))

    add(scope_ref("key", principal.key_id), principal.key.budget)
    if principal.team_id is not None:
        add(scope_ref("team", principal.team_id), principal.team.budget)
    user = end_user_of(principal, end_user)
    if user is not None:
        add(user, principal.end_user.budget)
    return found


@dataclass(slots=True)
class Reservation:
    """Money held for one request in every scope, until `settle`."""

    id: str
    scopes: tuple[BudgetScope, ...]
    periods: tuple[Period, ...]
    amount: int
    """Micro-dollars held in each scope (the worst case, or what was left for a stream)."""
    settled: bool = False


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    scope: BudgetScope
    period: Period
    spent: int
    """Settled micro-dollars this period (seeded from the database plus live)."""
    held: int
    """Micro-dollars reserved by requests in flight."""

    @property
    def remaining(self) -> int:
        return self.scope.max_micros - self.spent - self.held


@dataclass(frozen=True, slots=True)
class ScopeSeen:
    """What a reservation saw of one counter; `created` is set while it awaits seeding."""

    used: int
    created: float | None = None


@dataclass(slots=True)
class Refusal:
    index: int
    used: int
    alert: bool
    """True the first time this period: fire the `budget.exceeded` alert."""


@dataclass(slots=True)
class Held:
    amount: int
    seen: list[ScopeSeen] = field(default_factory=list)


def _usd(micros: int) -> str:
    return f"${micros_to_usd(micros).quantize(Decimal('0.000001')).normalize():f}"


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BudgetExceededError(RateLimitError):
    """429 `budget_exceeded`, naming the scope (`param`: `team.budget`) and when it resets."""

    default_code = "budget_exceeded"

    def __init__(
        self, scope: BudgetScope, period: Period, used: int, needed: int, now: float
    ) -> None:
        resets = f"resets {_when(period.end)}" if period.end is not None else "never resets"
        super().__init__(
            f"Budget exceeded for {scope.ref.label}: {_usd(used)} of "
            f"{_usd(scope.max_micros)} ({period.name}, {resets}) is spent or held by requests "
            f"in flight; this request may cost up to {_usd(needed)}.",
            retry_after=None if period.end is None else max(1.0, period.end - now),
            param=f"{scope.ref.kind}.budget",
        )
        self.scope, self.period = scope, period


class BudgetTooSmallError(BadRequestError):
    """400 `budget_too_small`: what the request needs to be admitted is more than the budget's
    whole period allowance, so waiting can never admit it (a 429 would make clients retry for
    nothing)."""

    default_code = "budget_too_small"

    def __init__(self, scope: BudgetScope, needed: int, why: str) -> None:
        super().__init__(
            f"This request {why.format(cost=_usd(needed))}, more than the whole "
            f"{scope.policy.period} "
            f"budget of {scope.ref.label} ({_usd(scope.max_micros)}), so it can never be "
            "admitted: lower max_tokens, shorten the prompt, or raise the budget.",
            param="max_tokens",
        )
        self.scope = scope


def check_fits(scopes: Sequence[BudgetScope], needed: int, why: str) -> None:
    """Raise `BudgetTooSmallError` when `needed` (the least the request can be admitted on)
    exceeds some scope's whole allowance; a budget that is merely spent gives a 429 later.
    `why` says what `needed` is, with `{cost}` where its amount goes."""
    for scope in scopes:
        if needed > scope.max_micros:
            raise BudgetTooSmallError(scope, needed, why)


class StreamBudgetExceededError(BudgetExceededError):
    """Ends a stream whose cost reached what its budget had left."""

    def __init__(self, scope: BudgetScope, period: Period, spent: int) -> None:
        RateLimitError.__init__(
            self,
            f"The response was cut off: the budget of {scope.ref.label} "
            f"({_usd(scope.max_micros)} {period.name}) was reached after {_usd(spent)}.",
            code="budget_exceeded",
            param=f"{scope.ref.kind}.budget",
        )
        self.scope, self.period = scope, period


def threshold_alert(scope: BudgetScope, period: Period, threshold: float, spent: int) -> Alert:
    return Alert(
        kind="budget.threshold",
        severity="critical" if threshold >= 1 else "warning",
        message=(
            f"Budget of {scope.ref.label} is {threshold:.0%} spent: {_usd(spent)} of "
            f"{_usd(scope.max_micros)} ({period.name} {period.key})."
        ),
        labels=_labels(scope, period),
        data={"threshold": threshold, "spent_micros": spent, "max_micros": scope.max_micros},
    )


def exceeded_alert(scope: BudgetScope, period: Period, used: int) -> Alert:
    return Alert(
        kind="budget.exceeded",
        severity="critical",
        message=(
            f"Budget of {scope.ref.label} is exhausted ({_usd(used)} of "
            f"{_usd(scope.max_micros)} {period.name} {period.key}): requests are refused."
        ),
        labels=_labels(scope, period),
        data={"used_micros": used, "max_micros": scope.max_micros},
    )


def _labels(scope: BudgetScope, period: Period) -> dict[str, str]:
    labels = {"scope": scope.ref.kind, "id": scope.ref.id, "period": period.key}
    if scope.ref.parent is not None:
        labels["key_id"] = scope.ref.parent
    return labels


def due(thresholds: Sequence[float], spent: int, limit: int) -> list[float]:
    """The thresholds settled spend has reached (each fires once per period: callers dedupe)."""
    return [t for t in thresholds if spent >= math.ceil(t * limit)]


@runtime_checkable
class BudgetLedger(Protocol):
    """Holds and settles spend against every scope's budget, all or nothing."""

    async def reserve(
        self,
        scopes: Sequence[BudgetScope],
        micros: int,
        *,
        minimum: int | None = None,
        at: float | None = None,
    ) -> Reservation:
        """Hold `micros` in every scope, or (given `minimum`) whatever is left if that is at
        least `minimum`; else raise `BudgetExceededError` naming the scope and hold nothing.
        `at`: when the request started (default: now); it picks the periods."""
        ...

    async def extend(self, reservation: Reservation, micros: int) -> bool:
        """Hold `micros` more for a running stream; False when a budget cannot cover it."""
        ...

    async def settle(self, reservation: Reservation, micros: int) -> None:
        """Replace the hold with the real cost. Idempotent."""
        ...

    async def status(self, scope: BudgetScope) -> BudgetStatus:
        """The scope's counter for the current period (admin API, tests)."""
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks (graceful shutdown)."""
        ...
