"""How well scores separate labelled answers: precision, recall, F1 and accuracy at a
threshold, AUROC over all thresholds, and the F1-best threshold of a set of scores."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Figures:
    """Rates at one threshold (flag when score >= threshold); label 1 = hallucinated."""

    rows: int
    positives: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    auroc: float
    threshold: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def figures(scores: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> Figures:
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    flagged = s >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    accuracy = _ratio(int(np.sum(flagged == (y == 1))), len(y))
    return Figures(len(y), int(y.sum()), precision, recall, f1, accuracy, auroc(s, y), threshold)


def auroc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The probability that a random positive outscores a random negative (ties count half)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks of ties (1-based)
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    u = ranks[y == 1].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def best_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The threshold with the highest F1 on these rows: halfway between the lowest flagged
    score and the highest score below it (so nearby new scores fall on the same side)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    values = np.unique(s)[::-1]
    positives = int(y.sum())
    best, best_f1 = float(values[0]) if len(values) else 0.5, -1.0
    for i, t in enumerate(values):
        flagged = s >= t
        tp = int(np.sum(flagged & (y == 1)))
        f1 = 2 * tp / (int(flagged.sum()) + positives) if positives else 0.0
        if f1 > best_f1:
            below = float(values[i + 1]) if i + 1 < len(values) else float(t) - 1.0
            best, best_f1 = (float(t) + below) / 2.0, f1
    return best
