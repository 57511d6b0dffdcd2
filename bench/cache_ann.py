"""ANN lookup latency for the semantic cache at 10k / 100k / 1M entries.

Vectors are synthetic but shaped like sentence embeddings: 384 dimensions (MiniLM's) with a low
intrinsic dimension (a random 48-d subspace plus noise), unit length. Queries are stored vectors
nudged to cosine ~0.95 (a paraphrase that should hit). The lookup timed is
`SemanticStore.nearest` (the index search plus the entry checks), embedding excluded; recall@1
is against exact search over the same vectors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.stats import percentile
from opsgate.cache.embed.hashing import HashingEmbedder
from opsgate.cache.semantic.index import FlatIndex, UsearchIndex, VectorDtype
from opsgate.cache.semantic.store import SemanticStore
from opsgate.cache.store import EntryMeta

DIM = 384
QUERIES = 400
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class AnnRow:
    index: str
    entries: int
    build_s: float
    p50_ms: float
    p99_ms: float
    recall_at_1: float
    build_reused: bool = False
    """The build time is from an earlier run whose index file was reused."""


def synthetic(n: int, seed: int = 7) -> Matrix:
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((48, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        size = min(100_000, n - start)
        z = rng.standard_normal((size, 48)).astype(np.float32)
        block = z @ basis + 0.3 * rng.standard_normal((size, DIM)).astype(np.float32)
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def paraphrases(
    vectors: Matrix, count: int, seed: int = 11
) -> tuple[Matrix, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(vectors), count)
    noise = rng.standard_normal((count, DIM)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    queries = vectors[picks] + 0.33 * noise
    return queries / np.linalg.norm(queries, axis=1, keepdims=True), picks


def exact_truth(vectors: Matrix, queries: Matrix) -> npt.NDArray[np.int64]:
    best = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 50):
        best[start : start + 50] = np.argmax(queries[start : start + 50] @ vectors.T, axis=1)
    return best


def _time(fn: Callable[[Matrix], list[tuple[str, float]]], queries: Matrix) -> list[float]:
    for q in queries[:20]:
        fn(q)
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def _store_with(part: FlatIndex | UsearchIndex, n: int) -> SemanticStore:
    """A store whose one partition is `part`, holding ids 1..n as live entries."""
    store = SemanticStore(HashingEmbedder(DIM), threshold=0.8, max_entries=n + 1)
    store.parts["p"] = part
    meta = EntryMeta("team:bench", "m", None, None, 0.0)
    from opsgate.cache.semantic.entry import SemanticEntry

    store.entries = {i + 1: SemanticEntry(f"k{i}", "p", meta, 1e12) for i in range(n)}
    return store


def _built_ann(
    vectors: Matrix, dtype: VectorDtype, cache_dir: Path | None
) -> tuple[UsearchIndex, float, bool]:
    """The HNSW index over `vectors` and its build time; built once per size and kept in
    `cache_dir` (a 1M build takes many minutes on two shared cores), then loaded."""
    ann = UsearchIndex(DIM, dtype)
    file = cache_dir / f"ann-{len(vectors)}-{dtype}-v1.usearch" if cache_dir else None
    if file is not None and file.exists() and file.with_suffix(".json").exists():
        ann.load(file)
        return ann, float(json.loads(file.with_suffix(".json").read_text())["build_s"]), True
    t0 = time.perf_counter()
    ann.add(np.arange(1, len(vectors) + 1, dtype=np.uint64), vectors, threads=2)
    build = time.perf_counter() - t0
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        ann.save(file)
        file.with_suffix(".json").write_text(json.dumps({"build_s": build}))
    return ann, build, False


def bench_index(
    kind: str,
    vectors: Matrix,
    queries: Matrix,
    truth: npt.NDArray[np.int64],
    dtype: VectorDtype,
    cache_dir: Path | None = None,
) -> AnnRow:
    reused = False
    if kind == "exact":
        t0 = time.perf_counter()
        part: FlatIndex | UsearchIndex = FlatIndex(DIM)
        part.add(np.arange(1, len(vectors) + 1, dtype=np.uint64), vectors)
        build = time.perf_counter() - t0
    else:
        part, build, reused = _built_ann(vectors, dtype, cache_dir)
    store = _store_with(part, len(vectors))
    latencies = _time(lambda q: store.nearest("p", q, 0.0), queries)
    found = [part.search(q, 1)[0][0] - 1 for q in queries]
    recall = float(np.mean(np.asarray(found) == truth))
    label = "numpy exact" if kind == "exact" else f"usearch HNSW {dtype}"
    return AnnRow(
        label,
        len(vectors),
        build,
        percentile(latencies, 50),
        percentile(latencies, 99),
        recall,
        reused,
    )


def bench_faiss(vectors: Matrix, queries: Matrix, truth: npt.NDArray[np.int64]) -> AnnRow | None:
    """faiss HNSW (flat f32 storage) for the choice: same M and ef as usearch."""
    try:
        import faiss  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    faiss.omp_set_num_threads(2)
    index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction, index.hnsw.efSearch = 128, 64
    t0 = time.perf_counter()
    index.add(vectors)
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    latencies = []
    found = []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), 4)
        latencies.append((time.perf_counter() - start) * 1000)
        found.append(int(ids[0][0]))
    latencies.sort()
    recall = float(np.mean(np.asarray(found) == truth))
    return AnnRow(
        "faiss HNSW f32",
        len(vectors),
        build,
        percentile(latencies, 50),
        percentile(latencies, 99),
        recall,
    )


def run_ann(
    sizes: Sequence[int],
    dtype: VectorDtype = "f16",
    *,
    exact_up_to: int = 1_000_000,
    faiss_at: int = 100_000,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> list[AnnRow]:
    rows: list[AnnRow] = []
    for n in sizes:
        progress(f"ANN: {n:,} synthetic vectors")
        vectors = synthetic(n)
        queries, _ = paraphrases(vectors, QUERIES)
        truth = exact_truth(vectors, queries)
        if n <= exact_up_to:
            rows.append(bench_index("exact", vectors, queries, truth, dtype))
        progress(f"ANN: building usearch over {n:,}")
        rows.append(bench_index("usearch", vectors, queries, truth, dtype, cache_dir))
        if n == faiss_at and (row := bench_faiss(vectors, queries, truth)) is not None:
            rows.append(row)
    return rows
