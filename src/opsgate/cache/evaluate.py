"""Judge a semantic-cache threshold on labelled paraphrase pairs (`{"id", "a", "b", "label"}`).

The cache question is pairwise: with `a` cached, would `b` hit (cosine >= threshold), and should
it (label 1)? Pairs are split by a hash of their id into a tuning half and a held-out half; the
threshold is chosen on the tuning half as the lowest one whose false-hit rate (share of
different-meaning pairs that would hit) stays within the target on every dataset, and judged on
the held-out half. The data is read where it lies; it is evaluation-only and never copied.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from opsgate.cache.embed.base import Embedder

Scores = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    a: str
    b: str
    label: int


@dataclass(frozen=True, slots=True)
class Quality:
    threshold: float
    precision: float
    recall: float
    false_hit_rate: float
    """Share of label-0 pairs that would be served from the cache."""
    pairs: int


def load_pairs(path: str | Path) -> list[Pair]:
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [Pair(str(r["id"]), r["a"], r["b"], int(r["label"])) for r in rows]


def split(pairs: Sequence[Pair], seed: str = "opsgate-threshold") -> tuple[list[Pair], list[Pair]]:
    """(tuning, held-out): about half each, stable for a given seed."""
    tune: list[Pair] = []
    held: list[Pair] = []
    for pair in pairs:
        digest = hashlib.sha256(f"{seed}|{pair.id}".encode()).digest()
        (tune if digest[0] < 128 else held).append(pair)
    return tune, held


async def pair_scores(embedder: Embedder, pairs: Sequence[Pair], batch: int = 256) -> Scores:
    """Cosine similarity of each pair's two texts."""
    out = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        a = await embedder.embed([p.a for p in chunk])
        b = await embedder.embed([p.b for p in chunk])
        out[start : start + len(chunk)] = np.einsum("ij,ij->i", a, b)
    return out


def quality(scores: Scores, labels: Sequence[int], threshold: float) -> Quality:
    y = np.asarray(labels, dtype=bool)
    hit = scores >= threshold
    true_hits = int(np.sum(hit & y))
    hits = int(np.sum(hit))
    negatives = int(np.sum(~y))
    return Quality(
        threshold=threshold,
        precision=true_hits / hits if hits else 1.0,
        recall=true_hits / int(np.sum(y)) if np.any(y) else 0.0,
        false_hit_rate=int(np.sum(hit & ~y)) / negatives if negatives else 0.0,
        pairs=len(labels),
    )


def lowest_safe_threshold(
    scored: Sequence[tuple[Scores, Sequence[int]]], target: float, step: float = 0.005
) -> float:
    """The lowest threshold (on a `step` grid) whose false-hit rate is within `target` on
    every (scores, labels) set: the most recall the false-hit budget allows."""
    for raw in np.arange(-1.0, 1.0 + step, step):
        threshold = round(float(raw), 4)
        if all(quality(s, y, threshold).false_hit_rate <= target for s, y in scored):
            return threshold
    return 1.0


@dataclass(frozen=True, slots=True)
class Judged:
    """One embedder's threshold (chosen on the tuning halves) and its held-out quality."""

    embedder: str
    threshold: float
    held_out: dict[str, Quality]
    """Dataset name -> quality on its held-out half."""
    tuning: dict[str, Quality]


async def judge(
    embedder: Embedder, datasets: Mapping[str, Sequence[Pair]], target: float = 0.015
) -> Judged:
    """Choose the lowest threshold within `target` false hits on every tuning half."""
    halves = {name: split(pairs) for name, pairs in datasets.items()}
    tune_scored, held_scored = {}, {}
    for name, (tune, held) in halves.items():
        tune_scored[name] = (await pair_scores(embedder, tune), [p.label for p in tune])
        held_scored[name] = (await pair_scores(embedder, held), [p.label for p in held])
    threshold = lowest_safe_threshold(list(tune_scored.values()), target)
    return Judged(
        embedder=embedder.name,
        threshold=threshold,
        held_out={n: quality(s, y, threshold) for n, (s, y) in held_scored.items()},
        tuning={n: quality(s, y, threshold) for n, (s, y) in tune_scored.items()},
    )
