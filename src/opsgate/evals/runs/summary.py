"""A run's aggregates (per target: rows, failures, cost, latency; per scorer: mean with its
bootstrap interval and failures) and the paired comparison of two runs."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from opsgate.evals.runs.stats import Paired, bootstrap_ci, paired_bootstrap
from opsgate.evals.runs.store import EvalStore


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


async def summarise(store: EvalStore, run_id: str, scorers: list[str]) -> dict[str, Any]:
    """{"targets": {label: {rows, failed, cost_usd, tokens, latency_p50_ms, scorers: {name:
    {n, mean, low, high, failed}}}}}"""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    failures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    latencies: dict[str, list[float]] = defaultdict(list)
    async for page in store.results(run_id):
        for r in page:
            t = totals[r.target]
            t["rows"] += 1
            t["failed"] += r.status != "ok"
            t["cost_micros"] += r.cost_micros
            t["tokens"] += r.tokens
            if r.latency_ms is not None:
                latencies[r.target].append(r.latency_ms)
            for name in scorers:
                score = r.scores.get(name) or {}
                if score.get("value") is None:
                    failures[r.target][name] += 1
                else:
                    values[r.target][name].append(float(score["value"]))
    targets: dict[str, Any] = {}
    for label, t in totals.items():
        per_scorer = {}
        for name in scorers:
            est = bootstrap_ci(values[label][name])
            per_scorer[name] = {
                "n": est.n, "mean": _clean(est.mean), "low": _clean(est.low),
                "high": _clean(est.high), "failed": failures[label][name],
            }  # fmt: skip
        lat = latencies[label]
        targets[label] = {
            "rows": int(t["rows"]),
            "failed": int(t["failed"]),
            "cost_usd": t["cost_micros"] / 1e6,
            "tokens": int(t["tokens"]),
            "latency_p50_ms": round(float(np.median(lat)), 3) if lat else None,
            "scorers": per_scorer,
        }
    return {"targets": targets}


@dataclass(frozen=True, slots=True)
class Comparison:
    target_a: str
    target_b: str
    scorer: str
    paired: Paired

    def as_json(self) -> dict[str, Any]:
        p = self.paired
        return {
            "target_a": self.target_a, "target_b": self.target_b, "scorer": self.scorer,
            "n": p.n, "mean_a": _clean(p.mean_a), "mean_b": _clean(p.mean_b),
            "diff": _clean(p.diff), "low": _clean(p.low), "high": _clean(p.high),
            "p_value": _clean(p.p_value), "significant": p.n > 0 and p.significant,
        }  # fmt: skip


async def _values(store: EvalStore, run_id: str) -> dict[str, dict[str, dict[int, float]]]:
    """target -> scorer -> row index -> value (scored rows only)."""
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    async for page in store.results(run_id):
        for r in page:
            for name, score in r.scores.items():
                if score.get("value") is not None:
                    out[r.target][name][r.row_index] = float(score["value"])
    return out


async def compare(store: EvalStore, run_a: str, run_b: str) -> list[Comparison]:
    """B against A on the rows both scored: targets of the same name, or the only target of
    each run; scorers of the same name."""
    a, b = await _values(store, run_a), await _values(store, run_b)
    if len(a) == 1 and len(b) == 1:
        pairs = [(next(iter(a)), next(iter(b)))]
    else:
        pairs = [(t, t) for t in sorted(set(a) & set(b))]
    result = []
    for ta, tb in pairs:
        for scorer in sorted(set(a[ta]) & set(b[tb])):
            rows = sorted(set(a[ta][scorer]) & set(b[tb][scorer]))
            xs = [a[ta][scorer][i] for i in rows]
            ys = [b[tb][scorer][i] for i in rows]
            result.append(Comparison(ta, tb, scorer, paired_bootstrap(xs, ys)))
    return result
