"""Indirect prompt injection on the retrieval path: BIPIA-style documents (clean and poisoned
copies) ingested into a knowledge base and scanned chunk by chunk exactly as the retrieval stage
scans them (the injection detector, `untrusted=True`). A document counts as caught when any of
its chunks is flagged; a clean document as flagged likewise. Reported per task and overall, on
the dev file and (separately, as training data) on train.jsonl, beside the whole-document scan
and a keyword baseline."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opsgate.config.guard import GuardConfig
from opsgate.guard.service import load_injection
from opsgate.rag.chunking import chunk
from opsgate.rag.model import ChunkSettings
from opsgate.rag.parse import parse

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "indirect_injection"
KEYWORDS = re.compile(r"\b(ignore|disregard|instead|you must|new instructions?)\b", re.I)


@dataclass(frozen=True, slots=True)
class Row:
    split: str
    method: str
    task: str
    caught: float
    flagged: float
    poisoned: int
    clean: int


def _rate(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


def evaluate(path: Path, split: str, settings: ChunkSettings) -> list[Row]:
    scanner = load_injection(GuardConfig())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    results: dict[str, list[tuple[str, int, bool]]] = {"chunks": [], "document": [], "keywords": []}
    for row in rows:
        text = row["document"]
        parsed = parse(text.encode(), "doc.txt")
        spans = chunk(parsed.text, parsed.sections, settings)
        by_chunk = any(
            scanner.scan(parsed.text[s.start : s.end], untrusted=True).is_attack for s in spans
        )
        whole = scanner.scan(text, untrusted=True).is_attack
        results["chunks"].append((row["task"], row["label"], by_chunk))
        results["document"].append((row["task"], row["label"], whole))
        results["keywords"].append((row["task"], row["label"], bool(KEYWORDS.search(text))))
    out = []
    for method, found in results.items():
        for task in ["all", *sorted({t for t, _, _ in found})]:
            mine = [(label, hit) for t, label, hit in found if task in ("all", t)]
            poisoned = [hit for label, hit in mine if label == 1]
            clean = [hit for label, hit in mine if label == 0]
            out.append(
                Row(split, method, task, _rate(poisoned), _rate(clean), len(poisoned), len(clean))
            )
    return out


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| split | scan | task | poisoned caught | clean flagged | poisoned | clean |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.split} | {r.method} | {r.task} | {r.caught:.1%} | {r.flagged:.1%} | "
            f"{r.poisoned} | {r.clean} |"
        )
    return "\n".join(lines)


def run(chunk_tokens: int = 256, overlap: int = 32) -> list[Row]:
    settings = ChunkSettings(chunk_tokens, overlap)
    rows = evaluate(DATA / "dev.jsonl", "dev", settings)
    rows += evaluate(DATA / "train.jsonl", "train (training data)", settings)
    return rows


if __name__ == "__main__":
    print(table(run()))
