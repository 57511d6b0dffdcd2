"""The usage tables a rollup can read (`LEVELS`: per day, hour and minute, each keeping some
dimensions), how a batch's per-minute buckets are folded into each (`fold`), and which tables
cover a query's range with the fewest rows (`plan`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table

from opsgate.store.tables.traces import (
    USAGE_COUNTERS,
    USAGE_KEY,
    usage_day,
    usage_day_keys,
    usage_day_prompts,
    usage_day_users,
    usage_hour,
    usage_hour_keys,
    usage_hour_prompts,
    usage_hour_users,
    usage_minute,
)
from opsgate.store.usage import VALUES, UsageQuery, minute_of
from opsgate.store.usage_buckets import Totals, UsageKey


@dataclass(frozen=True, slots=True)
class Level:
    """One usage table: its period column and width, and the dimensions it keeps."""

    table: Table
    period: str
    seconds: int
    dims: tuple[str, ...]

    @property
    def key(self) -> tuple[str, ...]:
        return (self.period, *self.dims)

    def answers(self, query: UsageQuery) -> bool:
        return query.step % self.seconds == 0 and set(query.group_by) | set(query.filters) <= set(
            self.dims
        )


def _level(table: Table, seconds: int) -> Level:
    period, *dims = (c.name for c in table.primary_key.columns)
    return Level(table, period, seconds, tuple(dims))


LEVELS: tuple[Level, ...] = (
    _level(usage_day_keys, 86_400),
    _level(usage_day_users, 86_400),
    _level(usage_day, 86_400),
    _level(usage_day_prompts, 86_400),
    _level(usage_hour_keys, 3_600),
    _level(usage_hour_users, 3_600),
    _level(usage_hour, 3_600),
    _level(usage_hour_prompts, 3_600),
    _level(usage_minute, 60),
)
"""Every write adds to all of them; a rollup reads, per period (coarsest first), the first
table here that keeps the dimensions it names. Within a period they are listed smallest first
(keys and teams are few, end users more, the full key multiplies them); the `*_prompts` tables
come last, for the queries that name a prompt dimension."""


_POSITIONS = {dim: USAGE_KEY.index(dim) for dim in USAGE_KEY}


def fold(
    buckets: Mapping[UsageKey, Totals], levels: Sequence[Level] = LEVELS
) -> list[tuple[Level, list[tuple[Any, ...]]]]:
    """Each level's rows for a batch's per-minute buckets, counters summed with numpy (the
    writer does this for every batch; adding them per bucket per level in Python cost more than
    the rest of the batch's row building) and latency sketches merged.

    `buckets` must be in key order, as `aggregate` returns them: the per-minute rows keep that
    order (a stable lock order on PostgreSQL) and are not sorted again here.
    """
    keys = list(buckets)
    if not keys:
        return [(level, []) for level in levels]
    totals = [buckets[key] for key in keys]
    values = [_values(t.sums) for t in totals]
    counters = np.array([v[:_N_COUNTERS] for v in values], dtype=np.int64).reshape(len(keys), -1)
    sums = np.array([v[_N_COUNTERS:] for v in values], dtype=np.float64).reshape(len(keys), -1)
    out = []
    for level in levels:
        if level.key == USAGE_KEY:
            rows = [
                (*key, *value, *t.latency())
                for key, value, t in zip(keys, values, totals, strict=True)
            ]
            out.append((level, rows))
            continue
        picks = [_POSITIONS[dim] for dim in level.dims]
        slots: dict[tuple[Any, ...], int] = {}
        index = [
            slots.setdefault(
                (key[0] - key[0] % level.seconds, *(key[i] for i in picks)), len(slots)
            )
            for key in keys
        ]
        summed_counters = np.zeros((len(slots), counters.shape[1]), dtype=np.int64)
        summed_sums = np.zeros((len(slots), sums.shape[1]), dtype=np.float64)
        np.add.at(summed_counters, index, counters)
        np.add.at(summed_sums, index, sums)
        latencies = [Totals({}) for _ in slots]
        for slot, t in zip(index, totals, strict=True):
            latencies[slot].add_latency(t)
        rows = [
            (*key, *c, *f, *lat.latency())
            for key, c, f, lat in zip(
                slots, summed_counters.tolist(), summed_sums.tolist(), latencies, strict=True
            )
        ]
        rows.sort()
        out.append((level, rows))
    return out


_values = operator.itemgetter(*VALUES)
_N_COUNTERS = len(USAGE_COUNTERS)


@dataclass(frozen=True, slots=True)
class Segment:
    """Read `level`'s table for periods starting in [start, end)."""

    level: Level
    start: int
    end: int


def plan(query: UsageQuery) -> list[Segment]:
    """Cover the query's minutes with the fewest rows: whole days from a day table, the ragged
    hours at either end from an hour table, the ragged minutes from `usage_minute`.

    A table is usable when its period divides the bucket width (a day row cannot be split into
    hours) and it keeps every dimension the query groups or filters by; of those, the one with
    the fewest dimensions (fewest rows) wins. The answer is exact either way: segments never
    overlap and every minute of the range is in one.
    """
    lo = minute_of(query.since)
    hi = math.ceil(math.ceil(query.until) / 60) * 60
    tiers: list[Level] = []
    for seconds in sorted({level.seconds for level in LEVELS}, reverse=True):
        usable = [lv for lv in LEVELS if lv.seconds == seconds and lv.answers(query)]
        if usable:
            tiers.append(usable[0])
    return _cover(lo, hi, tiers)


def _cover(lo: int, hi: int, levels: list[Level]) -> list[Segment]:
    if lo >= hi or not levels:
        return []
    level, finer = levels[0], levels[1:]
    if not finer:
        return [Segment(level, lo, hi)]
    first = math.ceil(lo / level.seconds) * level.seconds
    last = hi - hi % level.seconds
    if first >= last:
        return _cover(lo, hi, finer)
    return [*_cover(lo, first, finer), Segment(level, first, last), *_cover(last, hi, finer)]
