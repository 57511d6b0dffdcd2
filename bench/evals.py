"""Eval runs and the hallucination detector (`python -m bench evals`).

1. An eval run of `--rows` (default 1,000) rows x 3 rule/embedding scorers (exact, regex,
   embedding similarity with the packaged MiniLM when the embed extra is installed, else the
   hashing embedder) through a real gateway in front of the fast fake upstream, results in a
   temporary SQLite file: wall time and rows/s, next to the same rows with one rule scorer
   (what the gateway round trips cost alone). Judge-scored runs are bounded by the judge
   model's latency and the concurrency instead: rows/s ~ concurrency / judge latency.
2. The local hallucination detector: `score()` latency on HaluEval QA answers with ~300-token
   contexts, and the model file's size.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.report import Grid, grids_markdown
from bench.servers import MODEL, fake_upstream, gateway
from bench.stats import percentile
from opsgate.accounting.tokens import count_text_tokens, get_tokenizer
from opsgate.cache.embed import EmbedderUnavailableError, HashingEmbedder
from opsgate.evals.client import ClientOptions, GatewayClient
from opsgate.evals.hallucination import MODEL_PATH, HallucinationDetector
from opsgate.evals.runs import EvalRunner, EvalStore, open_dataset, parse_spec
from opsgate.evals.scorers import EmbeddingSimilarity, Scorer, ScorerResources, build_scorer
from opsgate.store import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from opsgate.tools.hallucination.data import default_data_dir, load_qa

CONCURRENCY = 16
CONTEXT_TOKENS = 300
ANSWER = "Hello! How can I help you today?"  # what bench.upstream answers


@dataclass(frozen=True, slots=True)
class RunTiming:
    scorers: str
    rows: int
    seconds: float
    failed: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


@dataclass(frozen=True, slots=True)
class DetectorTiming:
    inputs: int
    tokens_median: int
    p50_ms: float
    p99_ms: float
    model_bytes: int


def _rows(path: Path, rows: int) -> None:
    with path.open("w") as file:
        for i in range(rows):
            expected = ANSWER if i % 2 else f"Answer number {i}."
            file.write(json.dumps({"id": f"r{i}", "input": f"Question {i}?",
                                   "expected": expected}) + "\n")  # fmt: skip


def _embedding(resources: ScorerResources) -> tuple[Scorer, str]:
    try:
        return build_scorer({"type": "embedding"}, resources), "MiniLM (local)"
    except (EmbedderUnavailableError, ValueError):
        return EmbeddingSimilarity(HashingEmbedder(1024)), "hashing"


async def _run(url: str, rows_file: Path, db: str, specs: list[Any], rows: int) -> RunTiming:
    spec = parse_spec({
        "name": "bench", "dataset": str(rows_file), "targets": [{"model": MODEL}],
        "scorers": ["exact"], "concurrency": CONCURRENCY,
    })  # fmt: skip
    engine = make_engine(db)
    client = GatewayClient(f"{url}/v1", "bench", ClientOptions(concurrency=CONCURRENCY))
    resources = ScorerResources(client=client)
    scorers = [s if isinstance(s, Scorer) else build_scorer(s, resources) for s in specs]
    try:
        runner = EvalRunner(spec, open_dataset(spec.dataset), scorers, client, EvalStore(engine))
        run = await runner.create()
        started = time.perf_counter()
        finished = await runner.run(run)
        seconds = time.perf_counter() - started
        failed = (finished.summary or {})["targets"][MODEL]["failed"]
        names = ", ".join(s.name for s in scorers)
        return RunTiming(names, finished.rows_done, seconds, failed)
    finally:
        for scorer in scorers:
            await scorer.aclose()
        await client.aclose()
        await dispose_engine(engine)


def run_evals(rows: int, progress: Callable[[str], None]) -> tuple[list[RunTiming], str]:
    timings = []
    with tempfile.TemporaryDirectory(prefix="bench-evals-") as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        _rows(rows_file, rows)
        db = f"sqlite:///{tmp}/evals.db"
        asyncio.run(upgrade(db))
        embedding, embedder = _embedding(ScorerResources())
        three = ["exact", {"type": "regex", "pattern": r"\bhelp\b"}, embedding]
        with fake_upstream() as upstream, gateway(upstream) as gw:
            for label, specs in (("one rule", ["exact"]), ("three", three)):
                progress(f"eval run: {rows} rows, {label} scorer(s)")
                timings.append(asyncio.run(_run(gw.url, rows_file, db, specs, rows)))
    return timings, embedder


def _contexts(min_tokens: int) -> list[tuple[str, str, str]]:
    """HaluEval QA rows whose knowledge is padded with other rows' knowledge to about
    `min_tokens` tokens (the item's own knowledge first)."""
    examples = [ex for ex in load_qa(default_data_dir()) if ex.source == "dev"]
    encoding = get_tokenizer()
    out = []
    for i, ex in enumerate(examples[:200]):
        knowledge, j = ex.knowledge, i
        while count_text_tokens(knowledge, encoding) < min_tokens:
            j = (j + 7) % len(examples)
            knowledge += " " + examples[j].knowledge
        out.append((knowledge, ex.question, ex.answer))
    return out


def run_detector(rounds: int = 5) -> DetectorTiming:
    detector = HallucinationDetector.load()
    inputs = _contexts(CONTEXT_TOKENS)
    encoding = get_tokenizer()
    tokens = [count_text_tokens(k, encoding) for k, _, _ in inputs]
    samples = []
    for _ in range(rounds):
        for knowledge, question, answer in inputs:
            started = time.perf_counter()
            detector.score(knowledge, question, answer)
            samples.append((time.perf_counter() - started) * 1000)
    return DetectorTiming(
        len(inputs),
        int(statistics.median(tokens)),
        percentile(sorted(samples), 50),
        percentile(sorted(samples), 99),
        MODEL_PATH.stat().st_size,
    )


def evals_grids(runs: list[RunTiming], embedder: str, det: DetectorTiming) -> list[Grid]:
    grid = Grid(
        "Eval run through the gateway (fake upstream, SQLite results)",
        ("scorers", "rows", "failed", "wall s", "rows/s"),
        [
            (r.scorers, str(r.rows), str(r.failed), f"{r.seconds:.1f}", f"{r.rows_per_s:,.0f}")
            for r in runs
        ],
        [
            f"concurrency {CONCURRENCY}; embedding similarity with the {embedder} embedder; one "
            "gateway process, the fake upstream and the runner share the cores; judge-scored runs "
            "are bounded by the judge's latency: rows/s ~ concurrency / judge latency"
        ],
    )
    detector = Grid(
        "Local hallucination detector (score(), one thread)",
        ("inputs", "context tokens (median)", "p50 ms", "p99 ms", "model file"),
        [
            (
                str(det.inputs),
                str(det.tokens_median),
                f"{det.p50_ms:.2f}",
                f"{det.p99_ms:.2f}",
                f"{det.model_bytes:,} bytes",
            )
        ],
        [
            "HaluEval QA dev answers; each knowledge text padded with others to >= 300 tokens "
            "(the gateway's token counter); quality figures in docs/evals.md"
        ],
    )
    return [grid, detector]


def main_evals(args: Any, note: str, console: Console, progress: Callable[[str], None]) -> None:
    from bench.docs import update_section

    runs, embedder = run_evals(max(1, args.eval_rows), progress)
    progress("hallucination detector latency")
    grids = evals_grids(runs, embedder, run_detector())
    for grid in grids:
        grid.rich(console)
    if not args.no_docs:
        body = "\n".join(["## Evals (`python -m bench evals`)", "", note, *grids_markdown(grids)])
        update_section("evals", body)
