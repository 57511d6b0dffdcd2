"""The HaluEval QA rows in `../shared/data` and the one deterministic way to fold them.

An item's faithful and hallucinated answers, the extra hallucinated answers `train.jsonl`
joins to it by `pair_id`, and any items that share a question or a knowledge text form one
group; a group is never split across folds, so a fold's score never rewards remembering an
item. Folds are dealt from a CRC-32 of the group key and the seed: independent of file order,
platform and numpy version.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from opsgate.evals.hallucination.text import fold

SEED = 20_251_206


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled answer; `source` is `dev` or the training file's `source`."""

    id: str
    pair_id: str
    knowledge: str
    question: str
    answer: str
    label: int
    source: str = "dev"
    group: str = ""


def default_data_dir() -> Path:
    """`../shared/data` next to the repository (a source checkout; never inside the repo)."""
    return Path(__file__).resolve().parents[4].parent / "shared" / "data"


def _jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def load(path: Path, *, source: str | None = None) -> list[Example]:
    return [
        Example(
            id=str(row["id"]),
            pair_id=str(row.get("pair_id") or row["id"]),
            knowledge=str(row["knowledge"]),
            question=str(row["question"]),
            answer=str(row["answer"]),
            label=int(str(row["label"])),
            source=source or str(row.get("source") or "dev"),
        )
        for row in _jsonl(path)
    ]


def load_qa(data_dir: Path | None = None) -> list[Example]:
    """dev rows, then the extra hallucinated answers of `train.jsonl` (grouped)."""
    root = (data_dir or default_data_dir()) / "halueval_qa"
    rows = load(root / "dev.jsonl", source="dev")
    if (root / "train.jsonl").exists():
        rows += load(root / "train.jsonl")
    return group(rows)


def load_general(data_dir: Path | None = None) -> list[Example]:
    """halueval_general: a query and a response, no knowledge."""
    path = (data_dir or default_data_dir()) / "halueval_general" / "dev.jsonl"
    return [
        Example(
            id=str(row["id"]),
            pair_id=str(row["id"]),
            knowledge="",
            question=str(row["query"]),
            answer=str(row["response"]),
            label=int(str(row["label"])),
            source="general",
        )
        for row in _jsonl(path)
    ]


def group(examples: Sequence[Example]) -> list[Example]:
    """Union of rows sharing a pair id, a folded question or a folded knowledge text; each
    group is named by its smallest pair id (content, not position)."""
    parent = list(range(len(examples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for i, ex in enumerate(examples):
        keys = (f"p:{ex.pair_id}", f"q:{' '.join(fold(ex.question).split())}")
        for key in (*keys, f"k:{' '.join(fold(ex.knowledge).split())}"):
            if key == "k:":
                continue
            j = first.setdefault(key, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    names: dict[int, str] = {}
    for i, ex in enumerate(examples):
        root = find(i)
        names[root] = min(names.get(root, ex.pair_id), ex.pair_id)
    return [replace(ex, group=names[find(i)]) for i, ex in enumerate(examples)]


def folds(examples: Sequence[Example], k: int, seed: int = SEED) -> list[int]:
    """A fold number per example: whole groups, dealt round-robin in seeded CRC-32 order."""
    groups = sorted({ex.group for ex in examples}, key=lambda g: (_order(g, seed), g))
    fold_of = {g: i % k for i, g in enumerate(groups)}
    return [fold_of[ex.group] for ex in examples]


def _order(key: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{key}".encode())
