"""Train the shipped detector: `python -m opsgate.tools.hallucination.train [--data DIR]`.

Reproducible by construction: folds come from CRC-32 of group keys (`data.folds`), the fit is
Newton's method from zero weights for a fixed number of steps (no sampling anywhere), and the
file stores rounded numbers (`model.DIGITS`), so two runs on the same data write the same
bytes. The threshold is the F1-best one on out-of-fold scores (grouped k-fold).

Faithful answers are also trained on in sentence form (`SENTENCE_FORMS`: "The answer is X.",
the question followed by the answer): HaluEval's faithful answers are all short spans, and
without these rows the model would learn that any full sentence is a hallucination.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from opsgate.evals.hallucination.features import Floats, features
from opsgate.evals.hallucination.measure import best_threshold, figures
from opsgate.evals.hallucination.model import MODEL_PATH, SupportModel
from opsgate.tools.hallucination import data
from opsgate.tools.hallucination.data import Example


def _question_then_answer(ex: Example) -> str:
    return f"{ex.question.strip().rstrip('?').strip()}? {ex.answer}."


SENTENCE_FORMS: tuple[Callable[[Example], str], ...] = (
    lambda ex: f"{ex.answer}.",
    lambda ex: f"The answer is {ex.answer}.",
    _question_then_answer,
)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    l2: float = 1.0
    steps: int = 30
    folds: int = 5
    seed: int = data.SEED


def augment(examples: Sequence[Example]) -> list[Example]:
    """Each example, then each faithful answer in every sentence form (same group, label 0)."""
    extra = [
        replace(ex, id=f"{ex.id}:form{i}", answer=form(ex), source="sentence_form")
        for ex in examples
        if ex.label == 0
        for i, form in enumerate(SENTENCE_FORMS)
    ]
    return [*examples, *extra]


class FeatureCache:
    """Features once per (knowledge, question, answer): cross-validation reuses them."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], Floats] = {}

    def __call__(self, examples: Sequence[Example]) -> Floats:
        rows = []
        for ex in examples:
            key = (ex.knowledge, ex.question, ex.answer)
            if (found := self._rows.get(key)) is None:
                found = self._rows[key] = features(*key)
            rows.append(found)
        return np.vstack(rows)


def balanced_weights(labels: Floats) -> Floats:
    """Each class gets half the total weight; weights sum to the row count."""
    n, pos = len(labels), float(labels.sum())
    if pos in (0.0, float(n)):
        return np.ones(n)
    return np.where(labels == 1, n / (2 * pos), n / (2 * (n - pos)))


def fit(x: Floats, y: Floats, cfg: TrainConfig) -> SupportModel:
    """L2-regularised, class-balanced logistic regression on standardised features, by a
    fixed number of Newton steps from zero (the bias is not penalised)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = balanced_weights(y) / len(y)
    penalty = np.full(z.shape[1], cfg.l2 / len(y))
    penalty[-1] = 0.0
    theta = np.zeros(z.shape[1])
    for _ in range(cfg.steps):
        p = 1.0 / (1.0 + np.exp(-(z @ theta)))
        gradient = z.T @ (w * (p - y)) + penalty * theta
        hessian = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(penalty + 1e-9)
        theta -= np.linalg.solve(hessian, gradient)
    return SupportModel(mean, scale, theta[:-1].copy(), float(theta[-1]), threshold=0.5)


def _labels(examples: Sequence[Example]) -> Floats:
    return np.array([ex.label for ex in examples], dtype=np.float64)


def out_of_fold(
    examples: Sequence[Example], cfg: TrainConfig, cache: FeatureCache
) -> tuple[list[Example], Floats]:
    """The augmented rows and each one's score from a model fitted on the other folds."""
    rows = augment(examples)
    fold_of = data.folds(rows, cfg.folds, cfg.seed)
    x = cache(rows)
    scores = np.zeros(len(rows))
    for k in range(cfg.folds):
        inside = np.array([f != k for f in fold_of])
        if inside.all() or not inside.any():
            continue
        model = fit(x[inside], _labels(rows)[inside], cfg)
        scores[~inside] = model.probabilities(x[~inside])
    return rows, scores


def digest(examples: Sequence[Example]) -> str:
    ids = "\n".join(sorted(ex.id for ex in examples))
    return hashlib.sha256(ids.encode()).hexdigest()[:16]


def train(
    examples: Sequence[Example], cfg: TrainConfig, cache: FeatureCache | None = None
) -> SupportModel:
    """The model fitted on all `examples` (augmented), its threshold the F1-best one on
    their out-of-fold scores."""
    cache = cache or FeatureCache()
    rows, oof = out_of_fold(examples, cfg, cache)
    model = fit(cache(rows), _labels(rows), cfg)
    meta = {"config": asdict(cfg), "train_digest": digest(examples), "rows": len(examples)}
    return replace(model, threshold=best_threshold(oof, _labels(rows)), meta=meta)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsgate.tools.hallucination.train", description=__doc__
    )
    parser.add_argument("--data", type=Path, default=None, help="folder with halueval_qa/")
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="model file to write")
    args = parser.parse_args(argv)
    cfg = TrainConfig()
    started = time.monotonic()
    examples = data.load_qa(args.data)
    cache = FeatureCache()
    model = train(examples, cfg, cache)
    model.save(args.out)
    rows, oof = out_of_fold(examples, cfg, cache)
    fit_figures = figures(oof, _labels(rows), model.threshold)
    print(
        f"trained on {len(examples)} rows (+{len(rows) - len(examples)} sentence forms) in "
        f"{time.monotonic() - started:.1f} s; wrote {args.out}; threshold "
        f"{model.threshold:.3f}, out-of-fold F1 {fit_figures.f1:.3f} (training rows; see "
        "`python -m opsgate.tools.hallucination.evaluate` for the reported figures)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
