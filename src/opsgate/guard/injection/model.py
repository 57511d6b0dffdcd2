"""The trained classifier: logistic regression on hashed n-grams plus the rule families, in
pure numpy, and its file format (`model.npz`, shipped in the package).

A text's logit is the largest of its whole-text logit and its window logits (windows of
`window` characters, every `stride`), so one injected sentence in a long prompt or document is
not diluted by the benign text around it. Each window's n-gram counts are normalised by the
square root of its n-gram count, the way the model was trained on whole texts.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from opsgate.guard.injection.features import grams

Floats = npt.NDArray[np.float64]
MODEL_PATH = Path(__file__).with_name("model.npz")
FORMAT = "opsgate-injection-lr/1"
CHUNK = 32_768
"""Texts longer than this are scored chunk by chunk (windows only), to bound memory."""


class ModelFileError(ValueError):
    """The model file is missing, unreadable or of another format."""


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Weights over `2**bits` n-gram buckets, one weight per rule family, and a bias."""

    bits: int
    weights: Floats
    bias: float
    rule_names: tuple[str, ...]
    rule_weights: Floats
    threshold: float
    untrusted_threshold: float
    window: int = 256
    stride: int = 128
    meta: dict[str, Any] = field(default_factory=dict)

    def logit(self, text: str) -> float:
        """The classifier's logit for one view (rules not included), before the bias."""
        if not text:
            return 0.0
        if len(text) <= CHUNK:
            return self._chunk_logit(text, whole=True)
        step = CHUNK - self.window
        return max(
            self._chunk_logit(text[start : start + CHUNK], whole=False)
            for start in range(0, len(text) - self.window, step)
        )

    def rule_logit(self, fired: frozenset[str]) -> float:
        return float(
            sum(w for n, w in zip(self.rule_names, self.rule_weights, strict=True) if n in fired)
        )

    def _chunk_logit(self, text: str, *, whole: bool) -> float:
        """Max over windows of the normalised n-gram sums, from running sums: characters by
        position, words and pairs in start order (located with `searchsorted`)."""
        g = grams(text, self.bits)
        starts, ends = self._windows(g.length, whole=whole)
        contrib = np.zeros(g.length)
        char_count = np.zeros(len(starts))
        for buckets in g.chars:
            contrib[: len(buckets)] += self.weights[buckets]
            char_count += np.minimum(ends, len(buckets)) - np.minimum(starts, len(buckets))
        running = np.concatenate([[0.0], np.cumsum(contrib)])
        total = (running[ends] - running[starts]) / np.sqrt(np.maximum(char_count, 1.0))
        word_sum = np.zeros(len(starts))
        word_count = np.zeros(len(starts))
        for buckets, begins in ((g.words, g.word_starts), (g.pairs, g.word_starts[:-1])):
            sums = np.concatenate([[0.0], np.cumsum(self.weights[buckets])])
            lo, hi = np.searchsorted(begins, starts), np.searchsorted(begins, ends)
            word_sum += sums[hi] - sums[lo]
            word_count += hi - lo
        total += word_sum / np.sqrt(np.maximum(word_count, 1.0))
        return float(total.max())

    def _windows(
        self, length: int, *, whole: bool
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        if length <= self.window:
            return np.array([0]), np.array([length])
        starts = np.arange(0, length - self.window + 1, self.stride)
        if starts[-1] != length - self.window:
            starts = np.append(starts, length - self.window)
        ends = starts + self.window
        if whole:
            starts, ends = np.append(starts, 0), np.append(ends, length)
        return starts, ends

    # -- file format --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        meta = {
            **self.meta,
            "format": FORMAT,
            "bits": self.bits,
            "bias": self.bias,
            "rule_names": list(self.rule_names),
            "threshold": self.threshold,
            "untrusted_threshold": self.untrusted_threshold,
            "window": self.window,
            "stride": self.stride,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            weights=self.weights.astype(np.float16),
            rule_weights=self.rule_weights.astype(np.float32),
            meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        )
        path.write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LinearModel:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                weights = data["weights"].astype(np.float64)
                rule_weights = data["rule_weights"].astype(np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(f"cannot read injection model {path}: {exc}") from exc
        if meta.get("format") != FORMAT or len(weights) != 2 ** meta["bits"]:
            raise ModelFileError(f"{path} is not an {FORMAT} model file")
        return cls(
            bits=meta.pop("bits"),
            weights=weights,
            bias=meta.pop("bias"),
            rule_names=tuple(meta.pop("rule_names")),
            rule_weights=rule_weights,
            threshold=meta.pop("threshold"),
            untrusted_threshold=meta.pop("untrusted_threshold"),
            window=meta.pop("window"),
            stride=meta.pop("stride"),
            meta=meta,
        )


def sparse_features(text: str, bits: int) -> tuple[npt.NDArray[np.intp], Floats]:
    """The whole text's feature vector (bucket, value) as training sees it: n-gram counts
    divided by the square root of the n-gram count, characters and words separately."""
    chars, words = grams(text, bits).all_buckets()
    buckets = np.concatenate([chars, words])
    values = np.concatenate(
        [
            np.full(len(chars), 1 / math.sqrt(max(len(chars), 1))),
            np.full(len(words), 1 / math.sqrt(max(len(words), 1))),
        ]
    )
    unique, inverse = np.unique(buckets, return_inverse=True)
    summed = np.bincount(inverse, weights=values, minlength=len(unique)).astype(np.float64)
    return unique.astype(np.intp), summed


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
