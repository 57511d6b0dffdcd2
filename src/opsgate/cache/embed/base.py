"""The embedder interface: texts in, unit-length float32 vectors out (cosine = dot product)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    name: str
    """Names the model and its settings: vectors from different names never share an index."""
    dim: int
    default_threshold: float
    """The cosine similarity for a hit, chosen on the paraphrase dev sets (docs/benchmarks.md)."""

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised row per text."""
        ...

    async def aclose(self) -> None: ...


def normalise_rows(rows: Vectors) -> Vectors:
    """Scale each row to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: Vectors = (rows / norms).astype(np.float32, copy=False)
    return out
