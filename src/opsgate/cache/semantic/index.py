"""Vector indexes for one semantic partition: exact (numpy) and approximate (usearch HNSW).

A partition starts exact, which is the fastest choice while it is small and needs no build;
`auto` moves it to HNSW once it passes `ANN_FROM` entries. usearch was chosen over faiss and
hnswlib by benchmark (docs/benchmarks.md): it removes entries in place (faiss's HNSW cannot,
which purges, erasure and TTLs need), saves and loads an index file, stores f16/i8 vectors, and
ships as a small wheel (hnswlib has no wheel for this Python).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from opsgate.cache.embed.base import Vectors

IndexKind = Literal["auto", "exact", "usearch"]
VectorDtype = Literal["f32", "f16", "i8"]
ANN_FROM = 4096
"""Entries after which an `auto` partition switches from exact search to HNSW."""
Ids = npt.NDArray[np.uint64]


class VectorIndex(Protocol):
    kind: str

    def __len__(self) -> int: ...

    def add(self, ids: Ids, vectors: Vectors) -> None: ...

    def remove(self, ids: Sequence[int]) -> None: ...

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        """Up to k (id, cosine similarity) pairs, best first."""
        ...

    def vectors(self) -> tuple[Ids, Vectors]:
        """Every (id, vector) held, to move or save them."""
        ...


class FlatIndex:
    """Brute force over a growing matrix: exact, and fastest for small partitions."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._matrix: Vectors = np.zeros((16, dim), dtype=np.float32)
        self._ids: Ids = np.zeros(16, dtype=np.uint64)
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._row)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        for id_, vector in zip(ids.tolist(), vectors, strict=True):
            row = self._row.get(id_)
            if row is None:
                row = len(self._row)
                if row == len(self._ids):
                    self._grow()
                self._row[id_] = row
                self._ids[row] = id_
            self._matrix[row] = vector

    def _grow(self) -> None:
        size = len(self._ids) * 2
        matrix = np.zeros((size, self.dim), dtype=np.float32)
        matrix[: len(self._ids)] = self._matrix
        ids = np.zeros(size, dtype=np.uint64)
        ids[: len(self._ids)] = self._ids
        self._matrix, self._ids = matrix, ids

    def remove(self, ids: Sequence[int]) -> None:
        for id_ in ids:
            row = self._row.pop(int(id_), None)
            if row is None:
                continue
            last = len(self._row)  # the old last row moves into the hole
            if row != last:
                moved = int(self._ids[last])
                self._matrix[row], self._ids[row] = self._matrix[last], moved
                self._row[moved] = row

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        n = len(self._row)
        if n == 0:
            return []
        scores = self._matrix[:n] @ vector
        k = min(k, n)
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top])]
        return [(int(self._ids[i]), float(scores[i])) for i in top]

    def vectors(self) -> tuple[Ids, Vectors]:
        n = len(self._row)
        return self._ids[:n].copy(), self._matrix[:n].copy()


class UsearchIndex:
    """HNSW from usearch, inner product on unit vectors (= cosine)."""

    kind = "usearch"

    def __init__(
        self,
        dim: int,
        dtype: VectorDtype = "f16",
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
    ) -> None:
        from usearch.index import Index

        self.dim = dim
        self._index = Index(
            ndim=dim,
            metric="ip",
            dtype=dtype,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, ids: Ids, vectors: Vectors, *, threads: int = 1) -> None:
        present = [i for i in ids.tolist() if self._index.contains(i)]
        if present:
            self.remove(present)
        self._index.add(ids, vectors, threads=threads)

    def remove(self, ids: Sequence[int]) -> None:
        if len(ids):
            self._index.remove(np.asarray(ids, dtype=np.uint64))

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        if len(self._index) == 0:
            return []
        found = self._index.search(vector, k)
        return [
            (int(key), 1.0 - float(distance))  # usearch's "ip" distance is 1 - dot
            for key, distance in zip(found.keys, found.distances, strict=True)
        ]

    def vectors(self) -> tuple[Ids, Vectors]:
        keys = np.asarray(self._index.keys, dtype=np.uint64)
        if len(keys) == 0:
            return keys, np.zeros((0, self.dim), dtype=np.float32)
        got = self._index.get(keys, dtype="f32")
        return keys, np.asarray(got, dtype=np.float32).reshape(len(keys), self.dim)

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    def load(self, path: Path) -> None:
        self._index.load(str(path))


def make_index(kind: IndexKind, dim: int, dtype: VectorDtype = "f16") -> VectorIndex:
    return UsearchIndex(dim, dtype) if kind == "usearch" else FlatIndex(dim)
