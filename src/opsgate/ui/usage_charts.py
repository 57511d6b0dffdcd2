"""From usage rollups (`UsageRow`s) to what the overview shows: time windows (and the one a
request names), chart series, headline figures and the top-N tables. Pure functions, no I/O.

Everything here reads rollups, never traces, so the overview costs the same with a thousand
traces or a million.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsgate.accounting.cost import micros_to_usd
from opsgate.errors import BadRequestError
from opsgate.store.usage import UsageRow
from opsgate.ui.visit import Visit

ONE_BUCKET = 86_400 * 10**6
"""A step wider than any epoch: every row of a range lands in one bucket (a plain total). A
whole number of days, so the rollup can read whole days from the daily table."""


@dataclass(frozen=True, slots=True)
class Window:
    """A time range the overview offers, and the chart bucket width that suits it."""

    name: str
    label: str
    seconds: int
    step: int
    """Seconds per chart bucket (hour multiples from a day up, so hourly rollups serve them)."""

    @property
    def step_label(self) -> str:
        if self.step % 86_400 == 0:
            return f"{self.step // 86_400} d"
        if self.step % 3600 == 0:
            return f"{self.step // 3600} h"
        return f"{self.step // 60} min"

    def bounds(self, now: float) -> tuple[float, float]:
        """(since, until): the range, its start aligned to a bucket so every bucket is whole
        except the one in progress."""
        since = math.floor((now - self.seconds) / self.step) * self.step
        return float(since), now


WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("1h", "last hour", 3600, 60),
        Window("6h", "last 6 hours", 6 * 3600, 300),
        Window("24h", "last 24 hours", 86_400, 3600),
        Window("7d", "last 7 days", 7 * 86_400, 3 * 3600),
        Window("30d", "last 30 days", 30 * 86_400, 86_400),
    )
}
DEFAULT_WINDOW = "24h"


def window_from(visit: Visit, default: str) -> Window:
    """The window the request's `range` names (`default` when none), or 400."""
    name = visit.request.query_params.get("range") or default
    window = WINDOWS.get(name)
    if window is None:
        raise BadRequestError(f"range must be one of {', '.join(WINDOWS)}; got {name!r}.")
    return window


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def headline(row: UsageRow | None, seconds: float) -> dict[str, Any]:
    """The figures over the row above the charts; `seconds` is the range's length."""
    if row is None or row.requests == 0:
        return {"requests": 0}
    return {
        "requests": row.requests,
        "per_minute": row.requests / (seconds / 60) if seconds > 0 else None,
        "error_rate": _rate(row.errors, row.requests),
        "p50": row.latency_ms_p50,
        "p95": row.latency_ms_p95,
        "p99": row.latency_ms_p99,
        "ttft": row.ttft_ms_avg,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cached_tokens": row.cached_tokens,
        "cost_micros": row.cost_micros,
        "cache_hits": row.cache_hits,
        "cache_hit_rate": _rate(row.cache_hits, row.requests),
        "saved_micros": row.cost_saved_micros,
    }


def _round(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


_COLUMNS = ("rpm", "p50", "p95", "p99", "ttft", "errors", "prompt", "completion", "cost", "hits")


def charts(rows: Sequence[UsageRow], since: float, until: float, step: int) -> dict[str, Any]:
    """Chart data for the dashboard's script: one x axis (bucket starts, epoch seconds) and,
    per chart, its series. Buckets without traffic count 0 and leave rates as gaps (null)."""
    by_bucket = {row.bucket: row for row in rows}
    xs = list(range(int(since), int(until), step)) or [int(since)]
    cols: dict[str, list[float | None]] = {name: [] for name in _COLUMNS}
    for x in xs:
        row = by_bucket.get(x)
        covered = max(60.0, min(float(step), until - x))  # the bucket in progress is partial
        n = row.requests if row is not None else 0
        cols["rpm"].append(round(n / (covered / 60), 3))
        cols["p50"].append(_round(row.latency_ms_p50) if row else None)
        cols["p95"].append(_round(row.latency_ms_p95) if row else None)
        cols["p99"].append(_round(row.latency_ms_p99) if row else None)
        cols["ttft"].append(_round(row.ttft_ms_avg) if row else None)
        cols["errors"].append(_round(_pct(row.errors, n)) if row else None)
        cols["prompt"].append(row.prompt_tokens if row else 0)
        cols["completion"].append(row.completion_tokens if row else 0)
        cols["cost"].append(float(micros_to_usd(row.cost_micros)) if row else 0.0)
        cols["hits"].append(_round(_pct(row.cache_hits, n)) if row else None)

    def chart(key: str, title: str, unit: str, *series: tuple[str, str]) -> dict[str, Any]:
        return {
            "id": key,
            "title": title,
            "unit": unit,
            "series": [{"label": label, "values": cols[col]} for label, col in series],
        }

    return {
        "x": xs,
        "step": step,
        "charts": [
            chart("requests", "Requests / min", "req/min", ("requests/min", "rpm")),
            chart(
                "latency",
                "Latency and time to first token",
                "ms",
                ("p50", "p50"),
                ("p95", "p95"),
                ("p99", "p99"),
                ("TTFT (mean)", "ttft"),
            ),
            chart("errors", "Error rate", "%", ("errors %", "errors")),
            chart("tokens", "Tokens", "tokens", ("prompt", "prompt"), ("completion", "completion")),
            chart("cost", "Cost", "USD", ("cost", "cost")),
            chart("cache", "Cache hit rate", "%", ("hits %", "hits")),
        ],
    }


def _pct(part: int, whole: int) -> float | None:
    return part * 100 / whole if whole else None


@dataclass(frozen=True, slots=True)
class TopRow:
    name: str
    """The dimension's value ('' when the traces had none)."""
    requests: int
    tokens: int
    cost_micros: int
    error_rate: float | None
    p95: float | None


def top(rows: Sequence[UsageRow], dimension: str, n: int = 10) -> list[TopRow]:
    """The `n` biggest groups by cost (then requests) from a one-bucket grouped rollup."""
    ranked = sorted(rows, key=lambda r: (-r.cost_micros, -r.requests, r.group.get(dimension, "")))
    return [
        TopRow(
            name=row.group.get(dimension, ""),
            requests=row.requests,
            tokens=row.prompt_tokens + row.completion_tokens,
            cost_micros=row.cost_micros,
            error_rate=_rate(row.errors, row.requests),
            p95=row.latency_ms_p95,
        )
        for row in ranked[:n]
    ]
