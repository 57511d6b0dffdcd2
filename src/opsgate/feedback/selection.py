"""Which traces a review queue or a dataset takes: a trace filter plus conditions on scores,
corrections and guard verdicts.

```json
{"since": "7d", "model": "support-bot", "scores": [{"metric": "thumbs", "value": true}]}
{"model": "support-bot", "corrected": true}
{"flagged": ["injection", "pii"], "match": "any",
 "scores": [{"metric": "rating", "op": "lt", "value": 3}]}
```

The trace fields match exactly (`store.queries.where`, the trace list's own conditions). The
conditions (each score condition, `corrected`, `flagged`) are joined by `match`: `all` (the
default) or `any`. A score condition holds when the trace has *a* score of that metric (from
`source`, if given) satisfying it. Guard checks are matched in Python on the candidates the
SQL found (`verdicts non-empty` there), because JSON array tests differ between dialects.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, or_, select

from opsgate.access.models import parse_duration
from opsgate.config.feedback import MetricConfig
from opsgate.config.guard import Check
from opsgate.errors import BadRequestError
from opsgate.feedback.scores import ScoreSource
from opsgate.store.dialect import dialect_of
from opsgate.store.queries import TraceQuery, where
from opsgate.store.tables.feedback import scores
from opsgate.store.tables.traces import traces

Op = Literal["eq", "ne", "lt", "le", "gt", "ge"]
TimeRef = float | str
"""Epoch seconds, ISO-8601 (naive means UTC), or an age before now such as `7d`, `12h`."""
MAX_CONDITIONS = 16
_EQUALITY_OPS = ("eq", "ne")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreCondition(_Strict):
    """`thumbs == false`, `rating < 3`, `issue == "wrong"`, optionally from one source."""

    metric: str = Field(min_length=1, max_length=64)
    op: Op = "eq"
    value: bool | float | str
    source: ScoreSource | None = None


_CONDITION = re.compile(r"^\s*([A-Za-z][\w.:-]*)\s*(!=|<=|>=|=|<|>)\s*(.+?)\s*$")
_OPS: dict[str, Op] = {"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


def parse_condition(text: str, param: str = "where") -> ScoreCondition:
    """`thumbs=true`, `rating<3`, `issue!=wrong` as a condition (true/false and numbers are
    read as such, anything else as text); 400 naming `param` when it is none of those."""
    found = _CONDITION.match(text)
    if found is None:
        raise BadRequestError(
            f"{param}: expected metric=value, metric<3, metric!=value ...; got {text!r}",
            code="invalid_condition",
            param=param,
        )
    metric, op, raw = found.groups()
    value: bool | float | str = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        with contextlib.suppress(ValueError):
            value = float(raw)
    return ScoreCondition(metric=metric, op=_OPS[op], value=value)


class TraceFilter(_Strict):
    """Traces by their fields, and by what was said about them."""

    since: TimeRef | None = None
    until: TimeRef | None = None
    model: str | None = None
    deployment: str | None = None
    key_id: str | None = None
    team_id: str | None = None
    end_user: str | None = None
    session_id: str | None = None
    status: Literal["ok", "error"] | None = "ok"
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    scores: list[ScoreCondition] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    corrected: bool = Field(default=False, description="only traces with a correction")
    flagged: bool | list[Check] = Field(
        default=False, description="flagged by the guard (true: by any check)"
    )
    match: Literal["all", "any"] = Field(default="all", description="how conditions combine")

    def checks(self) -> frozenset[str] | None:
        """The guard checks that flag a trace; None when `flagged` is off."""
        if self.flagged is False or self.flagged == []:
            return None
        return frozenset() if self.flagged is True else frozenset(self.flagged)


Filters = Annotated[list[TraceFilter], Field(min_length=1, max_length=8)]
"""A union of filters: "thumbs up in the last 7 days, plus every corrected answer"."""


def resolve_time(value: TimeRef, now: float, param: str) -> float:
    """Epoch seconds for a `TimeRef`; 400 naming `param` when it is none of the forms."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text and text[-1] in "smhdw" and text[0].isdigit():
            try:
                return now - parse_duration(text)
            except ValueError:
                pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    raise BadRequestError(
        f"{param} must be epoch seconds, ISO-8601 or an age like 7d or 12h; got {value!r}",
        code="invalid_time",
        param=param,
    )


def check_conditions(
    flt: TraceFilter, metrics: Mapping[str, MetricConfig], param: str = "filter"
) -> None:
    """400 naming the field when a condition names an undeclared metric, or a value or an
    operator its type cannot take."""
    for i, cond in enumerate(flt.scores):
        where_ = f"{param}.scores[{i}]"
        metric = metrics.get(cond.metric)
        if metric is None:
            known = ", ".join(sorted(metrics)) or "none declared"
            raise BadRequestError(
                f"{where_}.metric: unknown metric {cond.metric!r} (known: {known})",
                code="unknown_metric",
                param=f"{where_}.metric",
            )
        problem = _value_problem(metric, cond)
        if problem:
            raise BadRequestError(
                f"{where_}: {problem}", code="invalid_condition", param=f"{where_}.value"
            )


def _value_problem(metric: MetricConfig, cond: ScoreCondition) -> str | None:
    value = cond.value
    if metric.type == "comment":
        return f"metric {cond.metric!r} holds comments, which cannot be compared"
    if metric.type in ("boolean", "category") and cond.op not in _EQUALITY_OPS:
        return f"a {metric.type} metric compares with eq or ne only, not {cond.op}"
    if metric.type == "boolean" and not isinstance(value, bool):
        return f"metric {cond.metric!r} is boolean: the value must be true or false"
    if metric.type == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"metric {cond.metric!r} is a float: the value must be a number"
    if metric.type == "category" and value not in (metric.values or ()):
        return f"metric {cond.metric!r} takes one of {list(metric.values or ())}, not {value!r}"
    return None


def _compare(column: Any, op: Op, value: Any) -> ColumnElement[bool]:
    ops = {
        "eq": column == value,
        "ne": column != value,
        "lt": column < value,
        "le": column <= value,
        "gt": column > value,
        "ge": column >= value,
    }
    return cast(ColumnElement[bool], ops[op])


def _score_exists(cond: ScoreCondition) -> ColumnElement[bool]:
    """`trace_id IN (scores that satisfy it)`: one pass over the matching scores, which both
    planners read once (SQLite into an ephemeral index), rather than a correlated probe per
    trace that SQLite may serve from the metric index, scanning every score of the metric."""
    s = scores.c
    parts: list[ColumnElement[bool]] = [s.trace_id.is_not(None), s.metric == cond.metric]
    if cond.source is not None:
        parts.append(s.source == cond.source)
    if isinstance(cond.value, bool):
        wanted = (s.value >= 0.5) if cond.value else (s.value < 0.5)
        parts.append(wanted if cond.op == "eq" else ~wanted)
    elif isinstance(cond.value, str):
        parts.append(_compare(s.label, cond.op, cond.value))
    else:
        parts.append(_compare(s.value, cond.op, float(cond.value)))
    return traces.c.trace_id.in_(select(s.trace_id).where(*parts))


def _corrected() -> ColumnElement[bool]:
    s = scores.c
    return traces.c.trace_id.in_(
        select(s.trace_id).where(s.trace_id.is_not(None), s.correction.is_not(None))
    )


def _has_verdicts(dialect: str) -> ColumnElement[bool]:
    return dialect_of(dialect).json_length(traces.c.guard_verdicts) > 0


class Compiled:
    """A filter as SQL: `where` narrows the traces (exactly, except guard checks, which it
    only narrows to "has a verdict"); `columns` are the conditions as selectable booleans,
    and `accepts` decides each candidate from them and its verdicts."""

    def __init__(self, flt: TraceFilter, dialect: str, now: float) -> None:
        self.filter = flt
        self._checks = flt.checks()
        self.conditions: list[ColumnElement[bool]] = [_score_exists(c) for c in flt.scores]
        if flt.corrected:
            self.conditions.append(_corrected())
        query = TraceQuery(
            since=resolve_time(flt.since, now, "since") if flt.since is not None else None,
            until=resolve_time(flt.until, now, "until") if flt.until is not None else None,
            model=flt.model,
            deployment=flt.deployment,
            key_id=flt.key_id,
            team_id=flt.team_id,
            end_user=flt.end_user,
            session_id=flt.session_id,
            status=flt.status,
            metadata=tuple(sorted(flt.metadata.items())),
        )
        self.where: list[ColumnElement[bool]] = where(query, dialect)
        everything = [*self.conditions]
        if self._checks is not None:
            everything.append(_has_verdicts(dialect))
        if everything:
            joined = and_(*everything) if flt.match == "all" else or_(*everything)
            self.where.append(joined)
        self.columns = [c.label(f"cond_{i}") for i, c in enumerate(self.conditions)]

    @property
    def needs_verdicts(self) -> bool:
        return self._checks is not None

    def accepts(self, row: Any) -> bool:
        """Whether a candidate row (with the `columns` and, if needed, `guard_verdicts`)
        really matches."""
        results = [bool(getattr(row, f"cond_{i}")) for i in range(len(self.columns))]
        if self._checks is not None:
            results.append(flagged_by(row.guard_verdicts, self._checks))
        if not results:
            return True
        return all(results) if self.filter.match == "all" else any(results)


def flagged_by(verdicts: Sequence[Any] | None, checks: frozenset[str]) -> bool:
    """Whether the guard left a verdict on the trace (from one of `checks`, if any named)."""
    for verdict in verdicts or ():
        if not isinstance(verdict, dict) or verdict.get("action") == "off":
            continue
        if not checks or verdict.get("check") in checks:
            return True
    return False
