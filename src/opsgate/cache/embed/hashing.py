"""The `hashing` embedder: lexical, no model and no extra dependency beyond numpy.

Words (lower-cased, a small stop-word list dropped) and word bigrams, plus character trigrams of
each word for spelling variants, are hashed (CRC-32, stable across processes, so a saved index
stays valid) into a signed, sublinear-tf vector. It finds rewordings that keep the words; it
cannot find paraphrases that change them, which is why its threshold is high.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Sequence

import numpy as np

from opsgate.cache.embed.base import Vectors, normalise_rows

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = """a an the is are was were be been am do does did of to in on at for with by from and or
i me my you your it its this that these those what which who whom how can could should would
will shall may might there their they them we our us he she his her as so if into about than then"""
STOP_WORDS = frozenset(_STOP.split())


def features(text: str, *, trigram_weight: float = 0.3) -> dict[str, float]:
    """Feature -> weight: words, word bigrams, and (lighter) character trigrams of words."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]
    feats: dict[str, float] = {}
    for word in words:
        feats["w:" + word] = feats.get("w:" + word, 0.0) + 1.0
        padded = f"<{word}>"
        for i in range(len(padded) - 2):
            gram = "c:" + padded[i : i + 3]
            feats[gram] = feats.get(gram, 0.0) + trigram_weight
    for first, second in itertools.pairwise(words):
        gram = f"b:{first} {second}"
        feats[gram] = feats.get(gram, 0.0) + 1.0
    return feats


class HashingEmbedder:
    default_threshold = 0.91

    def __init__(self, dim: int = 1024) -> None:
        self.dim = dim
        self.name = f"hashing-v1-{dim}"

    def embed_now(self, texts: Sequence[str]) -> Vectors:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat, count in features(text).items():
                h = zlib.crc32(feat.encode())
                sign = 1.0 if h & 0x8000_0000 else -1.0
                rows[row, h % self.dim] += sign * (1.0 + math.log(count) if count >= 1 else count)
        return normalise_rows(rows)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_now(texts)

    async def aclose(self) -> None:
        return None
