"""Save the semantic cache to a folder and load it back (at shutdown and start-up).

Layout: `manifest.json` (format, embedder, next id), `entries.json` (one row per entry), and per
partition either `<n>.usearch` (the HNSW file itself, so a large index is not rebuilt) or
`<n>.npz` (ids and vectors of an exact partition). The folder is written beside the old one and
swapped in, so a crash mid-save leaves the previous snapshot. An index saved with another
embedder is ignored: its vectors mean nothing to the new one.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from opsgate.cache.embed.base import Embedder
from opsgate.cache.semantic.entry import SemanticEntry
from opsgate.cache.semantic.index import FlatIndex, UsearchIndex, VectorDtype, VectorIndex
from opsgate.cache.store import EntryMeta

log = logging.getLogger("opsgate.cache")
FORMAT = 1


class Snapshotted(Protocol):
    """What a snapshot reads and fills: the semantic store's state (`SemanticStore`)."""

    parts: dict[str, VectorIndex]
    entries: dict[int, SemanticEntry]
    by_key: dict[str, int]
    embedder: Embedder
    dtype: VectorDtype
    next_id: int
    clock: Callable[[], float]


def save(store: Snapshotted, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names: dict[str, str] = {}
    for n, (partition, part) in enumerate(store.parts.items()):
        names[partition] = str(n)
        if isinstance(part, UsearchIndex):
            part.save(tmp / f"{n}.usearch")
        else:
            ids, vectors = part.vectors()
            np.savez(tmp / f"{n}.npz", ids=ids, vectors=vectors)
    rows = [
        [i, e.partition, e.key, *_meta_row(e.meta), e.expires] for i, e in store.entries.items()
    ]
    manifest = {
        "format": FORMAT,
        "embedder": store.embedder.name,
        "next_id": store.next_id,
        "partitions": names,
    }
    (tmp / "entries.json").write_bytes(orjson.dumps(rows))
    (tmp / "manifest.json").write_bytes(orjson.dumps(manifest))
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _meta_row(meta: EntryMeta) -> list[Any]:
    return [meta.namespace, meta.model, meta.key_id, meta.end_user, meta.created]


def load(store: Snapshotted, path: Path) -> int:
    """Fill an empty store from `path`; returns the live entries loaded (0 when none fit)."""
    try:
        manifest: dict[str, Any] = orjson.loads((path / "manifest.json").read_bytes())
        rows: list[list[Any]] = orjson.loads((path / "entries.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return 0
    if manifest.get("format") != FORMAT or manifest.get("embedder") != store.embedder.name:
        log.warning("ignoring the semantic index in %s: made by another embedder/format", path)
        return 0
    for partition, name in manifest["partitions"].items():
        file = path / f"{name}.usearch"
        if file.exists():
            ann = UsearchIndex(store.embedder.dim, store.dtype)
            ann.load(file)
            store.parts[partition] = ann
        else:
            data = np.load(path / f"{name}.npz")
            flat = FlatIndex(store.embedder.dim)
            flat.add(data["ids"], data["vectors"])
            store.parts[partition] = flat
    now, stale = store.clock(), []
    for id_, partition, key, ns, model, key_id, end_user, created, expires in rows:
        if expires <= now or partition not in store.parts:
            stale.append((partition, id_))
            continue
        meta = EntryMeta(ns, model, key_id, end_user, created)
        store.entries[id_] = SemanticEntry(key, partition, meta, expires)
        store.by_key[key] = id_
    for partition, id_ in stale:
        if partition in store.parts:
            store.parts[partition].remove([id_])
    store.next_id = max(int(manifest["next_id"]), store.next_id)
    return len(store.entries)
