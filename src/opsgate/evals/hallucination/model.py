"""The trained model: logistic regression over the support features, and its file format
(`model.json`, shipped in the package: a few hundred bytes, readable, diffable).

Numbers are stored rounded to `DIGITS` decimals, so the file a training run writes does not
depend on the last bits of a platform's floating-point arithmetic.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opsgate.evals.hallucination.features import FEATURE_NAMES, Floats

MODEL_PATH = Path(__file__).with_name("model.json")
FORMAT = "opsgate-hallucination-lr/1"
DIGITS = 6


class ModelFileError(ValueError):
    """The model file is missing, unreadable, of another format or for other features."""


def rounded(values: Floats | list[float]) -> list[float]:
    return [round(float(v), DIGITS) for v in values]


@dataclass(frozen=True, slots=True)
class SupportModel:
    """`sigmoid(bias + weights . (x - mean) / scale)` = the probability of a hallucination."""

    mean: Floats
    scale: Floats
    weights: Floats
    bias: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def probability(self, x: Floats) -> float:
        z = self.bias + float(np.dot(self.weights, (x - self.mean) / self.scale))
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def probabilities(self, rows: Floats) -> Floats:
        z = self.bias + ((rows - self.mean) / self.scale) @ self.weights
        result: Floats = 1.0 / (1.0 + np.exp(-z))
        return result

    def to_json(self) -> str:
        body = {
            "format": FORMAT,
            "features": list(FEATURE_NAMES),
            "mean": rounded(self.mean),
            "scale": rounded(self.scale),
            "weights": rounded(self.weights),
            "bias": round(self.bias, DIGITS),
            "threshold": round(self.threshold, DIGITS),
            "meta": self.meta,
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> SupportModel:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"cannot read hallucination model {path}: {exc}") from exc
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ModelFileError(f"{path} is not an {FORMAT} model file")
        if body.get("features") != list(FEATURE_NAMES):
            raise ModelFileError(f"{path} was trained on other features: retrain it")
        try:
            vectors = [np.array(body[k], dtype=np.float64) for k in ("mean", "scale", "weights")]
            bias, threshold = float(body["bias"]), float(body["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad model field: {exc}") from exc
        if any(v.shape != (len(FEATURE_NAMES),) for v in vectors) or not all(vectors[1]):
            raise ModelFileError(f"{path}: vectors must have {len(FEATURE_NAMES)} entries")
        mean, scale, weights = vectors
        meta = dict(body.get("meta") or {})
        return cls(mean, scale, weights, bias=bias, threshold=threshold, meta=meta)
