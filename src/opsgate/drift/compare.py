"""`opsgate drift compare`: the input-drift test on two files of texts, before going live.

Reads a field of each JSON line, samples at most `max_rows` per side (seeded), embeds both with
the chosen embedder, and reports the energy test (statistic, permutation p-value, effect size)
and the clusters whose share changed most, with example texts.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from opsgate.cache.embed import Embedder
from opsgate.drift import stats


class CompareInputError(ValueError):
    """A file cannot be compared (missing, not JSON lines, lacking the field)."""


def read_field(path: Path, field: str) -> list[str]:
    """The `field` of every JSON line of `path` (dots reach into objects: `input.text`)."""
    if not path.is_file():
        raise CompareInputError(f"{path}: no such file")
    texts = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CompareInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
            for part in field.split("."):
                if not isinstance(value, dict) or part not in value:
                    raise CompareInputError(f"{path}:{number}: no field {field!r}")
                value = value[part]
            if not isinstance(value, str):
                raise CompareInputError(f"{path}:{number}: field {field!r} is not a string")
            texts.append(value)
    if len(texts) < 2:
        raise CompareInputError(f"{path}: at least two rows are needed, found {len(texts)}")
    return texts


def sample(texts: list[str], n: int, seed: int) -> list[str]:
    return texts if len(texts) <= n else random.Random(seed).sample(texts, n)


async def compare(
    ref: list[str],
    cur: list[str],
    embedder: Embedder,
    *,
    max_rows: int = 1000,
    permutations: int = 199,
    clusters: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """The report `drift compare` prints (JSON-ready)."""
    a, b = sample(ref, max_rows, seed), sample(cur, max_rows, seed + 1)
    x = np.asarray(await embedder.embed(a), dtype=np.float64)
    y = np.asarray(await embedder.embed(b), dtype=np.float64)
    test = stats.energy_test(x, y, permutations=permutations, seed=seed)
    shifts, shares = stats.cluster_shifts(x, y, k=clusters, seed=seed)
    return {
        "test": "energy",
        "embedder": embedder.name,
        "n_ref": test.n_ref,
        "n_cur": test.n_cur,
        "statistic": test.statistic,
        "p_value": test.p_value,
        "effect": test.effect,
        "permutations": permutations,
        "cluster_p_value": shares.p_value,
        "clusters": [_cluster(s, a, b) for s in shifts],
    }


def _cluster(s: stats.ClusterShift, a: list[str], b: list[str]) -> dict[str, Any]:
    texts: Iterable[str] = (a[i] if s.from_reference else b[i] for i in s.examples)
    return {
        "cluster": s.cluster,
        "ref_share": s.ref_share,
        "cur_share": s.cur_share,
        "delta": s.delta,
        "examples": list(texts),
        "examples_from": "reference" if s.from_reference else "current",
    }
