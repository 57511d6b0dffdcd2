"""Offensive-language classifier: alt-profanity-check's model, scored with numpy alone.

A TF-IDF bag of words (15k words) and five sigmoid-calibrated linear SVMs whose probabilities
are averaged, exported from the package's pickles by `opsgate.tools.moderation.export` (the
gateway never unpickles anything). `probability()` equals the package's `predict_prob`.
`offending()` names the words that push a text towards offensive, for redaction.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

MODEL_PATH = Path(__file__).with_name("profanity.npz")
FORMAT = "opsgate-profanity/1"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
Floats = npt.NDArray[np.float64]


class ProfanityModelError(ValueError):
    """The model file is missing, unreadable or of another format."""


@dataclass(frozen=True, slots=True)
class ProfanityModel:
    index: dict[str, int]
    idf: Floats
    coef: Floats
    """One weight vector per calibrated fold (folds by words)."""
    intercept: Floats
    slope: Floats
    offset: Floats
    weight: Floats
    """Each word's mean weight over the folds: how much it alone says "offensive"."""

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> ProfanityModel:
        try:
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                words = bytes(data["vocabulary"]).decode().split("\n")
                coef = data["coef"].astype(np.float64)
                found = cls(
                    {w: i for i, w in enumerate(words)},
                    data["idf"].astype(np.float64),
                    coef,
                    data["intercept"].astype(np.float64),
                    data["slope"].astype(np.float64),
                    data["offset"].astype(np.float64),
                    coef.mean(axis=0),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ProfanityModelError(f"cannot read moderation model {path}: {exc}") from exc
        if meta.get("format") != FORMAT or found.coef.shape[1] != len(found.index):
            raise ProfanityModelError(f"{path} is not an {FORMAT} model file")
        return found

    def probability(self, text: str) -> float:
        """The probability that `text` is offensive (profanity, insults, slurs)."""
        counts = Counter(
            i for t in _TOKEN.findall(text.lower()) if (i := self.index.get(t)) is not None
        )
        decision = self.intercept.copy()
        if counts:
            ids = np.fromiter(counts, dtype=np.intp, count=len(counts))
            values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            values *= self.idf[ids]
            values /= np.sqrt(values @ values)
            decision += self.coef[:, ids] @ values
        calibrated = 1.0 / (1.0 + np.exp(self.slope * decision + self.offset))
        return float(calibrated.mean())

    def offending(self, text: str, min_weight: float) -> list[tuple[int, int]]:
        """Spans of the words whose own weight is at least `min_weight`."""
        lowered = text.lower()
        found = []
        for m in _TOKEN.finditer(lowered):
            i = self.index.get(m.group())
            if i is not None and self.weight[i] >= min_weight:
                found.append((m.start(), m.end()))
        return found
