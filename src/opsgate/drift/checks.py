"""One evaluation of one monitor: read its two windows, run its tests, name its state.

Each kind returns an `Evaluation`; the p-value decides the state (`drift` at or under `alpha`,
`warning` at or under `warning_alpha`, else `ok`); too few samples on either side is
`insufficient_data`, never a false alarm. The CPU-bound tests run in a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from opsgate.cache.embed import Embedder
from opsgate.config.drift import MonitorConfig, StatName
from opsgate.drift import stats
from opsgate.drift.store import DriftStore, Window

State = Literal["ok", "warning", "drift", "insufficient_data", "error"]
STATES: tuple[State, ...] = ("ok", "warning", "drift", "insufficient_data", "error")
DatasetTexts = Callable[[str, int], Awaitable[list[str]]]
"""Texts of a dataset's rows (its id or name, at most n): an input monitor's reference."""


@dataclass(slots=True)
class Evaluation:
    state: State
    n_ref: int = 0
    n_cur: int = 0
    statistic: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    effect: float | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)
    """Trace ids of the current window's sample (what a proposal's dataset takes)."""


class ReferenceCache:
    """Embeddings of dataset references by embedder and exact texts, the newest `size` kept:
    a dataset's rows are read at every evaluation but embedded again only when they changed
    (embedding 500 prompts with MiniLM takes seconds of CPU)."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray[Any, Any]] = OrderedDict()

    async def embed(self, embedder: Embedder, texts: list[str]) -> np.ndarray[Any, Any]:
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
        key = (embedder.name, digest)
        found = self._items.get(key)
        if found is None:
            found = np.asarray(await embedder.embed(texts))
            self._items[key] = found
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return found


def state_for(p_value: float, monitor: MonitorConfig) -> State:
    if p_value <= monitor.alpha:
        return "drift"
    if p_value <= monitor.warning_alpha:
        return "warning"
    return "ok"


def too_few(monitor: MonitorConfig, n_ref: int, n_cur: int, what: str) -> Evaluation | None:
    if n_ref >= monitor.min_samples and n_cur >= monitor.min_samples:
        return None
    return Evaluation(
        "insufficient_data",
        n_ref,
        n_cur,
        reason=f"{n_ref} reference and {n_cur} current {what}; at least "
        f"{monitor.min_samples} each are needed",
    )


def decode(blob: bytes) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.frombuffer(blob, dtype="<f2").astype(np.float32)


async def check_input(
    monitor: MonitorConfig,
    store: DriftStore,
    embedder: Embedder,
    ref: Window,
    cur: Window,
    dataset_texts: DatasetTexts | None = None,
    cache: ReferenceCache | None = None,
) -> Evaluation:
    """Energy distance of prompt embeddings, with per-cluster shares."""
    limit = monitor.max_samples
    current = await store.samples(monitor.scope, cur, limit, embedder=embedder.name)
    ref_ids: list[str | None]
    if monitor.reference.type == "dataset" and monitor.reference.dataset:
        if dataset_texts is None:
            return Evaluation("error", reason="dataset references are not available here")
        texts = await dataset_texts(monitor.reference.dataset, limit)
        if not texts:
            x = np.zeros((0, embedder.dim), np.float32)
        else:
            x = await (cache or ReferenceCache()).embed(embedder, texts)
        ref_ids = [None] * len(texts)
        examples_ref: list[str | None] = [t[:200] for t in texts]
    else:
        reference = await store.samples(monitor.scope, ref, limit, embedder=embedder.name)
        x = np.array([decode(r["embedding"]) for r in reference]).reshape(len(reference), -1)
        ref_ids = [r["trace_id"] for r in reference]
        examples_ref = [None] * len(reference)
    short = too_few(monitor, len(x), len(current), "embedded prompts")
    if short is not None:
        return short
    y = np.array([decode(r["embedding"]) for r in current])
    test, (shifts, shares) = await asyncio.to_thread(_input_tests, x, y, monitor.clusters)
    cur_ids = [str(r["trace_id"]) for r in current]
    clusters = []
    for s in shifts[:5]:
        ids = ref_ids if s.from_reference else cur_ids
        texts_of = examples_ref if s.from_reference else [None] * len(cur_ids)
        clusters.append(
            {
                "cluster": s.cluster,
                "ref_share": s.ref_share,
                "cur_share": s.cur_share,
                "delta": s.delta,
                "side": "reference" if s.from_reference else "current",
                "examples": [ids[i] for i in s.examples if ids[i] is not None],
                "example_texts": [texts_of[i] for i in s.examples if texts_of[i] is not None],
            }
        )
    return Evaluation(
        state_for(test.p_value, monitor),
        test.n_ref,
        test.n_cur,
        statistic=test.statistic,
        threshold=monitor.alpha,
        p_value=test.p_value,
        effect=test.effect,
        detail={
            "test": "energy",
            "clusters": clusters,
            "cluster_p_value": shares.p_value,
            "embedder": embedder.name,
        },
        trace_ids=cur_ids,
    )


def _input_tests(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], k: int
) -> tuple[stats.TwoSample, tuple[list[stats.ClusterShift], stats.TwoSample]]:
    return stats.energy_test(x, y), stats.cluster_shifts(x, y, k=k)


def _values(rows: Sequence[dict[str, Any]], name: StatName) -> list[Any]:
    if name == "answer_length":
        chars = [r["answer_chars"] for r in rows if r["answer_chars"] is not None]
        return chars if chars else [r["completion_tokens"] for r in rows]
    column = {
        "prompt_length": "prompt_chars",
        "language": "language",
        "refusal": "refusal",
        "finish_reason": "finish_reason",
        "tool_calls": "tool_calls",
        "json_valid": "json_valid",
    }[name]
    if name == "finish_reason":
        return [r[column] or "none" for r in rows]
    return [r[column] for r in rows if r[column] is not None]


CONTINUOUS = frozenset({"prompt_length", "answer_length"})


def _sub_test(name: StatName, a: list[Any], b: list[Any]) -> stats.TwoSample:
    if name in CONTINUOUS:
        return stats.ks_test(a, b)
    cats = sorted({str(v) for v in a} | {str(v) for v in b})
    return stats.chi_square(
        [
            [sum(1 for v in a if str(v) == c) for c in cats],
            [sum(1 for v in b if str(v) == c) for c in cats],
        ]
    )


def share(values: list[Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0.0) + 1.0 / len(values)
    return out


async def check_stats(
    monitor: MonitorConfig, store: DriftStore, ref: Window, cur: Window
) -> Evaluation:
    """KS (lengths) and chi-square (categories) per statistic, Bonferroni-combined."""
    a = await store.samples(monitor.scope, ref, monitor.max_samples)
    b = await store.samples(monitor.scope, cur, monitor.max_samples)
    short = too_few(monitor, len(a), len(b), "sampled requests")
    if short is not None:
        return short
    tests: dict[str, dict[str, Any]] = {}
    for name in monitor.statistics:
        va, vb = _values(a, name), _values(b, name)
        if len(va) < 2 or len(vb) < 2:
            continue
        t = _sub_test(name, va, vb)
        entry: dict[str, Any] = {"statistic": t.statistic, "p_value": t.p_value, "psi": t.effect}
        if name in CONTINUOUS:
            entry |= {"ref_mean": float(np.mean(va)), "cur_mean": float(np.mean(vb))}
        else:
            entry |= {"ref_shares": share(va), "cur_shares": share(vb)}
        tests[name] = entry
    if not tests:
        return Evaluation("insufficient_data", len(a), len(b), reason="no statistic has data")
    p = stats.combine([t["p_value"] for t in tests.values()])
    top = min(tests, key=lambda n: tests[n]["p_value"])
    return Evaluation(
        state_for(p, monitor),
        len(a),
        len(b),
        statistic=tests[top]["statistic"],
        threshold=monitor.alpha,
        p_value=p,
        effect=max(t["psi"] for t in tests.values()),
        detail={"test": "bonferroni", "top": top, "tests": tests},
        trace_ids=[str(r["trace_id"]) for r in b],
    )


async def check_quality(
    monitor: MonitorConfig, store: DriftStore, ref: Window, cur: Window
) -> Evaluation:
    """A two-sided CUSUM of the current scores against the reference's, threshold calibrated."""
    metric = monitor.metric or ""
    a = await store.scores(monitor.scope, metric, ref, monitor.max_samples)
    b = await store.scores(monitor.scope, metric, cur, monitor.max_samples)
    short = too_few(monitor, len(a), len(b), f"{metric!r} scores")
    if short is not None:
        return short
    x, y = [v for _, v in a], [v for _, v in b]
    c, fixed = await asyncio.to_thread(_quality_tests, x, y, monitor.alpha)
    # The alarm is the sum crossing its calibrated threshold; a p-value under warning_alpha
    # without a crossing is a warning.
    state: State = "drift" if c.alarm_at is not None else "ok"
    if state == "ok" and c.p_value <= monitor.warning_alpha:
        state = "warning"
    return Evaluation(
        state,
        c.n_ref,
        c.n_cur,
        statistic=c.statistic,
        threshold=c.threshold,
        p_value=c.p_value,
        effect=c.shift,
        detail={
            "test": "cusum",
            "metric": metric,
            "ref_mean": float(np.mean(x)),
            "cur_mean": float(np.mean(y)),
            "alarm_at": c.alarm_at,
            "alarm_time": b[c.alarm_at][0] if c.alarm_at is not None else None,
            "fixed_window_p_value": fixed.p_value,
        },
    )


def _quality_tests(
    x: list[float], y: list[float], alpha: float
) -> tuple[stats.Cusum, stats.TwoSample]:
    return stats.cusum_test(x, y, alpha=alpha), stats.mean_test(x, y)


async def check_operational(
    monitor: MonitorConfig, store: DriftStore, ref: Window, cur: Window
) -> Evaluation:
    """Latency and cost per request (KS) and error rate (chi-square), Bonferroni-combined."""
    a = await store.traces(monitor.scope, ref, monitor.max_samples)
    b = await store.traces(monitor.scope, cur, monitor.max_samples)
    short = too_few(monitor, len(a), len(b), "requests")
    if short is not None:
        return short
    lat_a = [r["duration_ms"] for r in a]
    lat_b = [r["duration_ms"] for r in b]
    cost_a = [r["cost_micros"] / 1e6 for r in a]
    cost_b = [r["cost_micros"] / 1e6 for r in b]
    err_a = sum(r["status"] != "ok" for r in a)
    err_b = sum(r["status"] != "ok" for r in b)
    tests = {
        "latency": stats.ks_test(lat_a, lat_b),
        "cost": stats.ks_test(cost_a, cost_b),
        "error_rate": stats.chi_square([[len(a) - err_a, err_a], [len(b) - err_b, err_b]]),
    }
    p = stats.combine([t.p_value for t in tests.values()])
    top = min(tests, key=lambda n: tests[n].p_value)
    return Evaluation(
        state_for(p, monitor),
        len(a),
        len(b),
        statistic=tests[top].statistic,
        threshold=monitor.alpha,
        p_value=p,
        effect=max(t.effect for t in tests.values()),
        detail={
            "test": "bonferroni",
            "top": top,
            "tests": {
                n: {"statistic": t.statistic, "p_value": t.p_value} for n, t in tests.items()
            },
            "p95_ms": [float(np.percentile(lat_a, 95)), float(np.percentile(lat_b, 95))],
            "cost_per_request_usd": [float(np.mean(cost_a)), float(np.mean(cost_b))],
            "error_rate": [err_a / len(a), err_b / len(b)],
        },
        trace_ids=[str(r["trace_id"]) for r in b],
    )
