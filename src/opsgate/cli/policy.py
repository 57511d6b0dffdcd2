"""The rate-limit and budget flags of `keys create/update` and `teams create/update`, and the
admin API bodies they become (`limits` and `budget` of access/models.py).

The API replaces a policy object whole, so an update reads the current one first and changes
only the flags given: `keys update ID --rpm 120` keeps the key's tpm and budget.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any

import typer

_LIMIT_FIELDS = ("rpm", "tpm", "max_parallel")
_BUDGET_FIELDS = ("max_usd", "period", "alert_at")


class Period(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    total = "total"


def _usd(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        amount = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not an amount in USD (e.g. 10 or 2.50)") from None
    if not amount.is_finite() or amount <= 0:
        raise typer.BadParameter("a budget must be more than $0 (use --no-budget to remove one)")
    return str(amount)


Rpm = Annotated[int | None, typer.Option(min=0, help="requests per minute (0: no limit)")]
Tpm = Annotated[int | None, typer.Option(min=0, help="tokens per minute (0: no limit)")]
MaxParallel = Annotated[
    int | None, typer.Option(min=0, help="requests in flight at once (0: no limit)")
]
Budget = Annotated[
    str | None,
    typer.Option(callback=_usd, metavar="USD", help="max spend per period, in USD (e.g. 10)"),
]
PeriodOpt = Annotated[
    Period | None, typer.Option(help="when the budget resets (UTC); default monthly")
]
AlertAt = Annotated[
    list[float] | None,
    typer.Option(
        min=0.01, max=1.0, help="alert at this share of the budget (repeatable; default .5 .8 1)"
    ),
]
NoLimits = Annotated[bool, typer.Option("--no-limits", help="remove every rate limit")]
NoBudget = Annotated[bool, typer.Option("--no-budget", help="remove the budget")]


@dataclass(frozen=True, slots=True)
class PolicyFlags:
    """What the user typed; None means "not given"."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: str | None = None
    period: Period | None = None
    alert_at: list[float] | None = None
    no_limits: bool = False
    no_budget: bool = False

    def check(self) -> None:
        """Refuse contradictions before anything is sent."""
        if self.no_limits and self.limits_given:
            raise typer.BadParameter(
                "--no-limits cannot be combined with --rpm/--tpm/--max-parallel"
            )
        if self.no_budget and self.budget_given:
            raise typer.BadParameter(
                "--no-budget cannot be combined with --budget/--period/--alert-at"
            )

    @property
    def limits_given(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.max_parallel))

    @property
    def budget_given(self) -> bool:
        return any(v is not None for v in (self.budget, self.period, self.alert_at))

    @property
    def given(self) -> bool:
        return self.limits_given or self.budget_given or self.no_limits or self.no_budget

    def for_create(self) -> dict[str, Any]:
        """`limits` and `budget` for a create body (absent when not given)."""
        self.check()
        body: dict[str, Any] = {}
        if self.limits_given:
            body["limits"] = self._limits({})
        if self.budget_given:
            body["budget"] = self._budget(None)
        return body

    def for_update(self, current: dict[str, Any]) -> dict[str, Any]:
        """`limits` and `budget` merged into `current` (the key or team as the API shows it);
        only the objects that change are in the answer, `None` where one is removed."""
        self.check()
        body: dict[str, Any] = {}
        if self.no_limits:
            body["limits"] = None
        elif self.limits_given:
            body["limits"] = self._limits(current.get("limits") or {})
        if self.no_budget:
            body["budget"] = None
        elif self.budget_given:
            body["budget"] = self._budget(current.get("budget"))
        return body

    def _limits(self, current: dict[str, Any]) -> dict[str, int] | None:
        """The given limits over the current ones; a 0 removes that one limit."""
        given = {name: getattr(self, name) for name in _LIMIT_FIELDS}
        merged = {
            name: current.get(name) if value is None else value for name, value in given.items()
        }
        kept = {name: value for name, value in merged.items() if value}
        return kept or None

    def _budget(self, current: dict[str, Any] | None) -> dict[str, Any]:
        if self.budget is None and current is None:
            raise typer.BadParameter("--period and --alert-at need --budget (there is none yet)")
        budget = {k: v for k, v in (current or {}).items() if k in _BUDGET_FIELDS}
        if self.budget is not None:
            budget["max_usd"] = self.budget
        if self.period is not None:
            budget["period"] = self.period.value
        if self.alert_at is not None:
            budget["alert_at"] = sorted(set(self.alert_at))
        return budget


NO_FLAGS = PolicyFlags()
"""The default of a command's `flags` parameter (`policy_options` fills it in)."""

Command = Callable[..., None]


def policy_options(*, removable: bool) -> Callable[[Command], Command]:
    """Give a command the rate-limit and budget options in place of its `flags` parameter
    (`--rpm --tpm --max-parallel --budget --period --alert-at`, with `removable` also
    `--no-limits --no-budget`), and call it with them as one `PolicyFlags`."""
    hints = {
        "rpm": Rpm,
        "tpm": Tpm,
        "max_parallel": MaxParallel,
        "budget": Budget,
        "period": PeriodOpt,
        "alert_at": AlertAt,
        **({"no_limits": NoLimits, "no_budget": NoBudget} if removable else {}),
    }
    defaults = {f.name: f.default for f in fields(PolicyFlags)}
    options = [
        inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[name], annotation=hint
        )
        for name, hint in hints.items()
    ]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        params: list[inspect.Parameter] = []
        for param in signature.parameters.values():
            params.extend(options if param.name == "flags" else [param])

        @functools.wraps(command)
        def with_flags(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in hints}
            command(**kwargs, flags=PolicyFlags(**given))

        with_flags.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        with_flags.__annotations__ = {param.name: param.annotation for param in params}
        return with_flags

    return decorate


def current_policy(owner: dict[str, Any]) -> dict[str, Any]:
    """A key's or team's `limits` and `budget` as the API showed them, as a body sends them."""
    limits = {k: v for k, v in (owner.get("limits") or {}).items() if k in _LIMIT_FIELDS and v}
    budget = owner.get("budget")
    return {
        "limits": limits or None,
        "budget": {k: v for k, v in budget.items() if k in _BUDGET_FIELDS} if budget else None,
    }


def describe_limits(limits: dict[str, Any] | None) -> str:
    """`60 rpm, 20000 tpm, 4 parallel`, or `-`."""
    limits = limits or {}
    parts = [
        f"{limits[name]} {label}"
        for name, label in (("rpm", "rpm"), ("tpm", "tpm"), ("max_parallel", "parallel"))
        if limits.get(name)
    ]
    return ", ".join(parts) or "-"


def describe_budget(budget: dict[str, Any] | None) -> str:
    """`$10 monthly`, or `-`."""
    if not budget:
        return "-"
    amount = f"{Decimal(str(budget['max_usd'])):f}"
    if "." in amount:
        amount = amount.rstrip("0").rstrip(".")
    return f"${amount} {budget['period']}"
