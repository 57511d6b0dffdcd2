"""`python -m bench cache`: the response cache's figures for docs/benchmarks.md.

Parts (`--cache-parts`, comma-separated): `stage` (the cache stage's own cost in process),
`http` (hit vs miss latency through the simulator), `ann` (semantic lookup at
`--ann-sizes` entries), `quality` (the hashing embedder's threshold on the dev sets), `quant`
(MiniLM torch fp32 vs ONNX fp32 vs ONNX int8; needs the `embed` extra). Built HNSW indexes and
the exported ONNX model are kept in `--cache-dir` so a rerun does not rebuild them.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import urllib.parse
from argparse import Namespace
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from bench.cache_ann import AnnRow
from bench.cache_embed import QuantRow
from bench.cache_http import HttpRow
from bench.cache_stage import StageRow
from bench.report import Grid, grids_markdown
from opsgate.cache import evaluate

PARTS = ("stage", "http", "ann", "quality", "quant")
T = TypeVar("T")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
EXACT_TARGET_US = 1000.0
SEMANTIC_TARGET_MS = 2.0


@dataclass(slots=True)
class CacheRun:
    stage: list[StageRow] = field(default_factory=list)
    http: list[HttpRow] = field(default_factory=list)
    ann: list[AnnRow] = field(default_factory=list)
    judged: list[evaluate.Judged] = field(default_factory=list)
    quant: list[QuantRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def say(message: str) -> None:
    """Progress from a child process (the parent's console cannot travel there)."""
    print(f"… {message}", flush=True)


def _in_child(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one part in a fresh process: parts load torch, onnxruntime, usearch and faiss, and
    a 1M-vector part holds gigabytes; apart, none can disturb or crash another."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def run_cache(
    parts: tuple[str, ...],
    sizes: tuple[int, ...],
    cache_dir: Path,
    redis_url: str | None,
    progress: Callable[[str], None],
) -> CacheRun:
    from bench.cache_ann import run_ann
    from bench.cache_embed import embed_extra, run_quality, run_quantisation
    from bench.cache_http import run_http
    from bench.cache_stage import stage_rows

    run = CacheRun()
    if "stage" in parts:
        progress("cache stage, in process")
        run.stage = _in_child(stage_rows, 3000, redis_url)
    if "http" in parts:
        progress("hit vs miss over HTTP (the misses wait for the simulator)")
        run.http = _in_child(run_http)
    if "ann" in parts:
        run.ann = _in_child(run_ann, sizes, cache_dir=cache_dir, progress=say)
    if "quality" in parts:
        run.judged = _in_child(run_quality, say)
    if "quant" in parts:
        if embed_extra():
            run.quant = _in_child(run_quantisation, cache_dir, say)
        else:
            run.skipped.append("quant: the `embed` extra is not installed")
    return run


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _quality_cells(judged: evaluate.Judged) -> list[str]:
    cells = []
    for name in ("quora_question_pairs", "medical_question_pairs"):
        q = judged.held_out[name]
        cells += [_pct(q.precision), _pct(q.recall), _pct(q.false_hit_rate)]
    return cells


def _ann_cells(r: AnnRow) -> tuple[str, ...]:
    build = f"{r.build_s:.1f}" + (" *" if r.build_reused else "")
    times = (build, f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}")
    return (r.index, f"{r.entries:,}", *times, f"{r.recall_at_1:.3f}")


def _quant_cells(q: QuantRow) -> tuple[str, ...]:
    agreement = (f"{q.cos_mean:.4f}", f"{q.cos_min:.4f}")
    head = (q.variant, f"{q.file_mb:.1f}", f"{q.p50_ms:.1f}", *agreement)
    return (*head, f"{q.judged.threshold:.3f}", *_quality_cells(q.judged))


QUALITY_HEADERS = ("QQP P", "QQP R", "QQP false hits", "MQP P", "MQP R", "MQP false hits")


def cache_grids(run: CacheRun) -> list[Grid]:
    grids = []
    rows: list[tuple[str, ...]]
    headers: tuple[str, ...]
    if run.stage:
        rows = [(r.case, f"{r.p50_us:,.0f}", f"{r.p99_us:,.0f}") for r in run.stage]
        note = f"target: an exact hit adds under {EXACT_TARGET_US:,.0f} µs at p50"
        grids.append(Grid("Cache stage, in process", ("case", "p50 µs", "p99 µs"), rows, [note]))
    if run.http:
        rows = [(r.case, str(r.requests), f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}") for r in run.http]
        headers = ("case", "requests", "p50 ms", "p99 ms")
        grids.append(Grid("Over HTTP, one request at a time", headers, rows))
    if run.ann:
        rows = [_ann_cells(r) for r in run.ann]
        headers = ("index", "entries", "build s", "p50 ms", "p99 ms", "recall@1")
        notes = [f"target: under {SEMANTIC_TARGET_MS} ms p50 at 1M entries"]
        if any(r.build_reused for r in run.ann):
            notes.append(
                "* built by an earlier run (index file reused); its build time is that run's"
            )
        grids.append(Grid("Semantic lookup, embedding excluded (384-d)", headers, rows, notes))
    judged = run.judged + [q.judged for q in run.quant]
    if judged:
        rows = [(j.embedder, f"{j.threshold:.3f}", *_quality_cells(j)) for j in judged]
        headers = ("embedder", "threshold", *QUALITY_HEADERS)
        grids.append(Grid("Thresholds (tuning halves) and held-out quality", headers, rows))
    if run.quant:
        rows = [_quant_cells(q) for q in run.quant]
        headers = ("variant", "file MiB", "p50 ms/text", "cos vs fp32", "min cos", "threshold")
        grids.append(Grid("MiniLM-L6-v2 quantisation", (*headers, *QUALITY_HEADERS), rows))
    return grids


def cache_markdown(run: CacheRun, note: str) -> str:
    parts = [
        "## Response cache (`python -m bench cache`)",
        "",
        note,
        "",
        "P = precision, R = recall, false hits = share of different-meaning pairs that would be "
        "served (the issue's limit: 2%). Thresholds are chosen on a tuning half of each dev set "
        "(the lowest whose false hits stay within 1.5% on both sets) and judged on the held-out "
        "half. QQP = Quora Question Pairs dev (2,295 pairs), MQP = Medical Question Pairs dev "
        "(972 pairs), read from `../shared/data`.",
    ]
    parts += grids_markdown(cache_grids(run))
    parts += [f"\n_skipped: {s}_" for s in run.skipped]
    return "\n".join(parts)


def main_cache(
    args: Namespace, note: str, console: Console, progress: Callable[[str], None]
) -> None:
    """The `cache` branch of `python -m bench` (options from its argument parser)."""
    from bench.docs import update_section
    from bench.report import print_grids

    parts = tuple(p.strip() for p in args.cache_parts.split(",") if p.strip())
    if unknown := set(parts) - set(PARTS):
        raise RuntimeError(f"unknown --cache-parts {sorted(unknown)}; choose from {PARTS}")
    sizes = tuple(int(n) for n in args.ann_sizes.split(",") if n.strip())
    url = os.environ.get("OPSGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    run = run_cache(parts, sizes, args.cache_dir, url if _reachable(url) else None, progress)
    print_grids(cache_grids(run), console)
    if not args.no_docs:
        update_section("cache", cache_markdown(run, note))


def _reachable(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 0.5):
            return True
    except OSError:
        return False
