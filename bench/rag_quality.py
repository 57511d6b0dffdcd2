"""Retrieval quality on the HaluEval QA passages: each distinct `knowledge` is a document, its
`question` the query; recall@1, recall@5 and MRR (over the top 10) for BM25, vector search with
each available embedder, and hybrid fusion; with and without MMR. Runs the real store (SQLite,
FTS5, usearch) through `opsgate.rag`, in a temporary database."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from opsgate.access.principal import MASTER
from opsgate.cache.embed import Embedder, EmbedderUnavailableError, build_embedder
from opsgate.config.cache import EmbedderConfig
from opsgate.config.rag import RagConfig
from opsgate.rag.ingest import Upload
from opsgate.rag.retrieve import Mode
from opsgate.rag.service import KnowledgeService
from opsgate.rag.store.sqlite import SqliteStore
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import upgrade

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "halueval_qa" / "dev.jsonl"
EMBEDDERS = {
    "hashing": EmbedderConfig(type="hashing"),
    "local": EmbedderConfig(type="local"),
    "onnx": EmbedderConfig(type="onnx", quantized=True),
}


@dataclass(frozen=True, slots=True)
class Figures:
    retriever: str
    embedder: str
    recall_1: float
    recall_5: float
    mrr: float
    queries: int
    ms_per_query: float


def load_pairs(path: Path = DATA) -> list[tuple[str, str, str]]:
    """(pair_id, knowledge, question) once per pair."""
    seen: dict[str, tuple[str, str, str]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        seen.setdefault(row["pair_id"], (row["pair_id"], row["knowledge"], row["question"]))
    return list(seen.values())


def score(ranked: Sequence[Sequence[str]], wanted: Sequence[str]) -> tuple[float, float, float]:
    r1 = r5 = rr = 0.0
    for paths, want in zip(ranked, wanted, strict=True):
        if want in paths[:1]:
            r1 += 1
        if want in paths[:5]:
            r5 += 1
        if want in paths[:10]:
            rr += 1 / (paths.index(want) + 1)
    n = len(wanted)
    return r1 / n, r5 / n, rr / n


async def evaluate(
    name: str, embedder_config: EmbedderConfig, pairs: list[tuple[str, str, str]]
) -> list[Figures]:
    try:
        embedder: Embedder = build_embedder(embedder_config)
    except EmbedderUnavailableError as exc:
        print(f"skipping {name}: {exc}")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/rag.db"
        await upgrade(url)
        engine = make_engine(url)
        config = RagConfig(embedder=embedder_config)
        service = KnowledgeService(SqliteStore(engine, Path(tmp) / "idx"), config)
        service._embedder = embedder
        try:
            await service.start()
            await service.create(MASTER, "halueval")
            uploads = [Upload(path=pid, data=knowledge.encode()) for pid, knowledge, _ in pairs]
            await service.ingest(MASTER, "halueval", uploads)
            out = []
            modes: list[tuple[str, Mode, bool]] = [
                ("bm25", "bm25", False),
                ("vector", "vector", False),
                ("hybrid", "hybrid", False),
                ("hybrid+mmr", "hybrid", True),
            ]
            for label, mode, mmr in modes:
                options = replace(service.options(10, mode=mode), mmr=mmr)
                ranked = []
                t0 = time.perf_counter()
                for _, _, question in pairs:
                    _, found = await service.search(MASTER, "halueval", question, options)
                    ranked.append([h.path for h in found.hits])
                ms = (time.perf_counter() - t0) * 1000 / len(pairs)
                r1, r5, mrr = score(ranked, [pid for pid, _, _ in pairs])
                out.append(Figures(label, name, r1, r5, mrr, len(pairs), ms))
            return out
        finally:
            await service.aclose()
            await dispose_engine(engine)


async def run(names: Sequence[str] = tuple(EMBEDDERS)) -> list[Figures]:
    pairs = load_pairs()
    figures: list[Figures] = []
    for name in names:
        figures.extend(await evaluate(name, EMBEDDERS[name], pairs))
    return figures


def table(figures: Sequence[Figures]) -> str:
    lines = [
        "| retriever | embedder | recall@1 | recall@5 | MRR@10 | queries | ms/query |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        embedder = "-" if f.retriever == "bm25" else f.embedder
        lines.append(
            f"| {f.retriever} | {embedder} | {f.recall_1:.3f} | {f.recall_5:.3f} | "
            f"{f.mrr:.3f} | {f.queries} | {f.ms_per_query:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import asyncio
    import sys

    print(table(asyncio.run(run(sys.argv[1:] or tuple(EMBEDDERS)))))
