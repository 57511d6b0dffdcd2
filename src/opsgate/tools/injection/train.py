"""Train the shipped classifier: `python -m opsgate.tools.injection.train [--data DIR]`.

Reproducible by construction: the held-out split and the folds come from CRC-32 of group keys
and a fixed seed (`data.split`, `data.folds`), and the optimiser is full-batch Adam from zero
weights with a fixed number of steps (no sampling anywhere), so two runs on the same data write
the same file, byte for byte (a test retrains the shipped model and compares). The held-out
part is never read here. The training part is the dev files' training split, plus
`injection/train.jsonl` when the folder has it (minus near-copies of held-out rows), plus
system prompts given to some benign prompts (`data.with_system_prompts`). Thresholds come from
out-of-fold scores on it (k-fold, grouped; `calibrate`).
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
import numpy.typing as npt

from opsgate.guard.injection.detector import FEATURE_NAMES, InjectionDetector
from opsgate.guard.injection.model import MODEL_PATH, Floats, LinearModel, sparse_features
from opsgate.guard.normalize import NormalizedText, normalize
from opsgate.tools.injection import data
from opsgate.tools.injection.calibrate import (
    family,
    measured_families,
    prompt_threshold,
    threshold_at,
)
from opsgate.tools.injection.data import Example

__all__ = ["TrainConfig", "main", "threshold_at", "train"]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    bits: int = 18
    l2: float = 1e-4
    steps: int = 150
    learning_rate: float = 0.05
    window: int = 256
    stride: int = 128
    folds: int = 5
    target_fpr: float = 0.015
    """Thresholds keep out-of-fold false positives at or under this, over the benign prompts
    of the measured families (the goal is <= 2%: the margin is for the gap between
    out-of-fold and new data), and over benign documents."""
    source_fpr: float = 0.025
    """... and at or under this for each measured benign family (the goal is <= 3%)."""
    hard_negative_weight: float = 3.0
    """Rows of `HARD_NEGATIVE_FAMILIES` weigh this much more than other benign prompts."""
    seed: int = data.SEED


HARD_NEGATIVE_FAMILIES = frozenset({"notinject", "wildguard_benign"})
"""Benign prompts full of trigger words ("ignore", "bypass", "unrestricted"): the false
positives a keyword-heavy classifier makes, so they count more in the fit."""


@dataclass(frozen=True, slots=True)
class Item:
    """One training row: the folded text, its label, and the rule families it fires."""

    text: str
    label: int
    untrusted: bool
    fired: frozenset[str]
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Design:
    """The training matrix: sparse n-gram rows (CSR), rule columns, labels, row weights."""

    indptr: npt.NDArray[np.intp]
    indices: npt.NDArray[np.intp]
    values: Floats
    rules: Floats
    labels: Floats
    weights: Floats


class Folding:
    """`normalize` once per example: cross-validation scans each one several times."""

    def __init__(self) -> None:
        self._cache: dict[str, NormalizedText] = {}

    def __call__(self, text: str) -> NormalizedText:
        if (found := self._cache.get(text)) is None:
            found = self._cache[text] = normalize(text)
        return found


def items_for(
    examples: Sequence[Example], fold: Folding, cfg: TrainConfig = TrainConfig()
) -> list[Item]:
    """Each example, plus each poisoned document's attack text on its own (a positive: the
    documents are long, the injected instruction is one sentence of them)."""
    items = []
    for ex in examples:
        folded = fold(ex.text)
        fired = InjectionDetector.fired(folded, ex.system_prompt)
        hard = not ex.label and family(ex.source) in HARD_NEGATIVE_FAMILIES
        weight = cfg.hard_negative_weight if hard else 1.0
        items.append(Item(folded.text, ex.label, ex.untrusted, fired, weight))
        if ex.attack_text:
            attack = fold(ex.attack_text)
            items.append(Item(attack.text, 1, True, InjectionDetector.fired(attack)))
    return items


def design(items: Sequence[Item], bits: int) -> Design:
    rows = [sparse_features(item.text, bits) for item in items]
    indptr = np.zeros(len(rows) + 1, dtype=np.intp)
    indptr[1:] = np.cumsum([len(b) for b, _ in rows])
    labels = np.array([item.label for item in items], dtype=np.float64)
    rule_cols = np.array(
        [[name in item.fired for name in FEATURE_NAMES] for item in items], dtype=np.float64
    ).reshape(len(items), len(FEATURE_NAMES))
    return Design(
        indptr,
        np.concatenate([b for b, _ in rows]) if rows else np.zeros(0, dtype=np.intp),
        np.concatenate([v for _, v in rows]) if rows else np.zeros(0),
        rule_cols,
        labels,
        _balanced_weights(items),
    )


def _balanced_weights(items: Sequence[Item]) -> Floats:
    """Each (trusted/untrusted, label) cell gets the same total weight, shared by its rows in
    proportion to their own weight; weights sum to 1."""
    cells: dict[tuple[bool, int], float] = {}
    for item in items:
        key = (item.untrusted, item.label)
        cells[key] = cells.get(key, 0.0) + item.weight
    raw = np.array([i.weight / cells[(i.untrusted, i.label)] for i in items])
    result: Floats = raw / raw.sum()
    return result


def fit(d: Design, cfg: TrainConfig) -> tuple[Floats, Floats, float]:
    """L2-regularised logistic regression by full-batch Adam: (n-gram weights, rule weights,
    bias). Deterministic: no sampling, fixed step count."""
    n, size = len(d.labels), 2**cfg.bits
    row = np.repeat(np.arange(n), np.diff(d.indptr))
    theta = np.zeros(size + d.rules.shape[1] + 1)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, cfg.steps + 1):
        w, r, b = theta[:size], theta[size:-1], theta[-1]
        z = np.bincount(row, weights=d.values * w[d.indices], minlength=n) + d.rules @ r + b
        g = d.weights * (1.0 / (1.0 + np.exp(-z)) - d.labels)
        grad = np.concatenate(
            [
                np.bincount(d.indices, weights=d.values * g[row], minlength=size) + cfg.l2 * w,
                d.rules.T @ g + cfg.l2 * r,
                [g.sum()],
            ]
        )
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        theta -= (
            cfg.learning_rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
        )
    return theta[:size].copy(), theta[size:-1].copy(), float(theta[-1])


def _model(
    params: tuple[Floats, Floats, float], cfg: TrainConfig, meta: dict[str, object]
) -> LinearModel:
    weights, rule_weights, bias = params
    return LinearModel(
        bits=cfg.bits,
        weights=weights.astype(np.float16).astype(np.float64),  # as the file stores them
        bias=bias,
        rule_names=FEATURE_NAMES,
        rule_weights=rule_weights,
        threshold=0.5,
        untrusted_threshold=0.5,
        window=cfg.window,
        stride=cfg.stride,
        meta=meta,
    )


def out_of_fold(examples: Sequence[Example], cfg: TrainConfig, fold: Folding) -> Floats:
    """Each example's score from a model trained on the other folds (its group never seen)."""
    fold_of = data.folds(examples, cfg.folds, cfg.seed)
    scores = np.zeros(len(examples))
    for k in range(cfg.folds):
        fitting = [ex for ex, f in zip(examples, fold_of, strict=True) if f != k]
        detector = InjectionDetector(
            _model(fit(design(items_for(fitting, fold, cfg), cfg.bits), cfg), cfg, {})
        )
        for i, ex in enumerate(examples):
            if fold_of[i] == k:
                scores[i] = detector.scan_normalized(
                    fold(ex.text), untrusted=ex.untrusted, system_prompt=ex.system_prompt
                ).score
    return scores


def digest(examples: Sequence[Example]) -> str:
    ids = "\n".join(sorted(ex.id for ex in examples))
    return hashlib.sha256(ids.encode()).hexdigest()[:16]


def train(examples: Sequence[Example], cfg: TrainConfig) -> tuple[LinearModel, Floats]:
    """The model fitted on all `examples`, thresholds from their out-of-fold scores."""
    fold = Folding()
    oof = out_of_fold(examples, cfg, fold)
    threshold = prompt_threshold(examples, oof, cfg.target_fpr, cfg.source_fpr)
    documents = np.array([s for ex, s in zip(examples, oof, strict=True) if ex.untrusted])
    clean = np.array([ex.label == 0 for ex in examples if ex.untrusted], dtype=bool)
    # no documents to calibrate on: judge them like prompts
    untrusted = threshold_at(documents[clean], cfg.target_fpr) if clean.any() else threshold
    meta: dict[str, object] = {"config": asdict(cfg), "train_digest": digest(examples)}
    model = _model(fit(design(items_for(examples, fold, cfg), cfg.bits), cfg), cfg, meta)
    return (
        replace(model, threshold=threshold, untrusted_threshold=untrusted),
        oof,
    )


def _share(flags: npt.NDArray[np.bool_]) -> str:
    return f"{flags.mean():.3f}" if len(flags) else "-"


def training_part(
    data_dir: Path | None, seed: int = data.SEED
) -> tuple[list[Example], list[Example]]:
    """(what the model is fitted and calibrated on, the held-out part it never sees)."""
    fitting, heldout = data.split(data.load_all(data_dir), seed)
    fitting = data.with_extra(fitting, heldout, data.load_extra(data_dir))
    return data.with_system_prompts(fitting, seed), heldout


def _print_rates(fitting: Sequence[Example], oof: Floats, model: LinearModel) -> None:
    """Out-of-fold TPR or FPR per source and label at the chosen thresholds."""
    cells: dict[tuple[bool, str, int], list[float]] = {}
    for ex, score in zip(fitting, oof, strict=True):
        cells.setdefault((ex.untrusted, ex.source, ex.label), []).append(float(score))
    for (untrusted, source, label), scores in sorted(cells.items()):
        threshold = model.untrusted_threshold if untrusted else model.threshold
        flags = np.array(scores) >= threshold
        rate = "TPR" if label else "FPR"
        print(f"    {source:28} {len(scores):5d} rows  out-of-fold {rate} {_share(flags)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsgate.tools.injection.train", description=__doc__
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="folder with injection/ and indirect_injection/"
    )
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="model file to write")
    parser.add_argument("--l2", type=float, default=TrainConfig().l2)
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    parser.add_argument("--bits", type=int, default=TrainConfig().bits)
    args = parser.parse_args(argv)
    cfg = TrainConfig(bits=args.bits, l2=args.l2, steps=args.steps)
    started = time.monotonic()
    fitting, heldout = training_part(args.data, cfg.seed)
    model, oof = train(fitting, cfg)
    model = replace(model, meta={**model.meta, "heldout_digest": digest(heldout)})
    model.save(args.out)
    print(
        f"trained on {len(fitting)} rows ({len(heldout)} held out, not trained on) in "
        f"{time.monotonic() - started:.0f} s; wrote {args.out} "
        f"({args.out.stat().st_size / 1024:.0f} KiB)"
    )
    measured = measured_families(fitting)
    parts: dict[str, tuple[Callable[[Example], bool], float]] = {
        "prompts (measured sources)": (
            lambda ex: not ex.untrusted and (ex.label == 1 or family(ex.source) in measured),
            model.threshold,
        ),
        "documents": (lambda ex: ex.untrusted, model.untrusted_threshold),
    }
    for name, (chosen, threshold) in parts.items():
        rows = [(ex.label, s) for ex, s in zip(fitting, oof, strict=True) if chosen(ex)]
        tpr, fpr = (np.array([s for y, s in rows if y == label]) for label in (1, 0))
        print(
            f"  {name}: threshold {threshold:.3f}, "
            f"out-of-fold TPR {_share(tpr >= threshold)}, FPR {_share(fpr >= threshold)}"
        )
    _print_rates(fitting, oof, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
