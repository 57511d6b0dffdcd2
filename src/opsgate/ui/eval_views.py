"""What the Evals page shows, as plain data: a run's per-example rows filtered by failing scorer,
and two runs' rows side by side. No I/O: the page reads results through `EvalStore` and hands
them here.

A row **fails** a scorer when the scorer could not score it (a missing field, a judge error) or
scored it under `below` (0.5 unless the filter says otherwise: every built-in scorer's value
lies in [0, 1] and higher is better). Two runs are lined up the way their comparison pairs them
(`evals/runs/summary.py` `compare`): targets of the same name, or the only target of each run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsgate.evals.runs import ResultRow, RunInfo

DEFAULT_BELOW = 0.5
SHOWN = 200
"""Rows a table shows; the count of all matching rows is shown beside it."""


def value_of(row: ResultRow | None, scorer: str) -> float | None:
    if row is None:
        return None
    score = row.scores.get(scorer) or {}
    value = score.get("value")
    return float(value) if isinstance(value, int | float) else None


def fails(row: ResultRow, scorer: str, below: float = DEFAULT_BELOW) -> bool:
    value = value_of(row, scorer)
    return value is None or value < below


def scorer_names(run: RunInfo) -> list[str]:
    """The run's scorers, as its summary names them (in the order of the spec)."""
    targets = (run.summary or {}).get("targets") or {}
    for summary in targets.values():
        return list((summary.get("scorers") or {}).keys())
    names = []
    for spec in run.spec.get("scorers") or ():
        names.append(spec if isinstance(spec, str) else str(spec.get("name") or spec.get("type")))
    return names


def target_names(run: RunInfo) -> list[str]:
    targets = (run.summary or {}).get("targets") or {}
    if targets:
        return list(targets)
    labels = []
    for t in run.spec.get("targets") or ():
        labels.append(str(t.get("name") or t.get("model") or f"prompt:{t.get('prompt')}"))
    return labels


@dataclass(frozen=True, slots=True)
class RowFilter:
    target: str | None = None
    failing: str | None = None
    """Only rows that fail this scorer."""
    below: float = DEFAULT_BELOW
    status: str | None = None
    """`ok` or `failed` (the target call)."""

    def keeps(self, row: ResultRow) -> bool:
        if self.target is not None and row.target != self.target:
            return False
        if self.status is not None and row.status != self.status:
            return False
        return self.failing is None or fails(row, self.failing, self.below)


@dataclass(slots=True)
class Filtered:
    rows: list[ResultRow] = field(default_factory=list)
    matched: int = 0
    total: int = 0


def filtered(pages: Iterable[Sequence[ResultRow]], keep: RowFilter) -> Filtered:
    out = Filtered()
    for page in pages:
        for row in page:
            out.total += 1
            if keep.keeps(row):
                out.matched += 1
                if len(out.rows) < SHOWN:
                    out.rows.append(row)
    return out


@dataclass(frozen=True, slots=True)
class Pair:
    """One dataset row in both runs (either side may be missing)."""

    row_index: int
    target_a: str
    target_b: str
    a: ResultRow | None
    b: ResultRow | None
    changed: tuple[str, ...]
    """Scorers whose value differs (or is missing on one side)."""

    def delta(self, scorer: str) -> float | None:
        va, vb = value_of(self.a, scorer), value_of(self.b, scorer)
        return None if va is None or vb is None else vb - va


def pairings(targets_a: Sequence[str], targets_b: Sequence[str]) -> list[tuple[str, str]]:
    if len(targets_a) == 1 and len(targets_b) == 1:
        return [(targets_a[0], targets_b[0])]
    return [(t, t) for t in targets_a if t in set(targets_b)]


def side_by_side(
    rows_a: Iterable[ResultRow],
    rows_b: Iterable[ResultRow],
    pairs: Sequence[tuple[str, str]],
    scorers: Sequence[str],
) -> list[Pair]:
    """The rows of each target pair, in row order; `changed` per scorer."""
    by_a = {(r.target, r.row_index): r for r in rows_a}
    by_b = {(r.target, r.row_index): r for r in rows_b}
    out = []
    for ta, tb in pairs:
        indexes = sorted({i for t, i in by_a if t == ta} | {i for t, i in by_b if t == tb})
        for i in indexes:
            a, b = by_a.get((ta, i)), by_b.get((tb, i))
            changed = tuple(s for s in scorers if value_of(a, s) != value_of(b, s))
            out.append(Pair(i, ta, tb, a, b, changed))
    return out


def compare_filter(pairs: Sequence[Pair], *, changed: bool, failing: str | None) -> list[Pair]:
    """Only pairs that differ (`changed`), and/or that fail `failing` on either side."""
    kept = []
    for pair in pairs:
        if changed and not pair.changed:
            continue
        if failing is not None and not any(
            row is None or fails(row, failing) for row in (pair.a, pair.b)
        ):
            continue
        kept.append(pair)
    return kept


def summary_rows(run: RunInfo) -> list[dict[str, Any]]:
    """(target, scorer, n, mean, low, high, failed) for the run's summary table."""
    rows = []
    for target, t in ((run.summary or {}).get("targets") or {}).items():
        for scorer, s in (t.get("scorers") or {}).items():
            rows.append({"target": target, "scorer": scorer, **s})
    return rows
