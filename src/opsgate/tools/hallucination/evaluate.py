"""The detector's reported figures: `python -m opsgate.tools.hallucination.evaluate`.

Nested, grouped cross-validation on HaluEval QA: each outer fold's rows are scored by a model
trained (and its threshold chosen, on inner out-of-fold scores) without the fold's groups, so
no reported row was trained or tuned on. The baselines get the same treatment: their threshold
is the F1-best one on the training folds. Figures count dev rows only; `train.jsonl`'s extra
hallucinated answers are training rows (their recall is shown apart).

`detector_form_tuned` is the same model with its threshold chosen on the HaluEval rows alone
(without the sentence-form faithful answers training adds): it shows what tuning to the
benchmark's form buys on the benchmark, and what it costs on answers written as sentences.

The *sentence probe* rewrites each held-out faithful answer as a sentence, in forms training
never used ("Based on the text, it is X.", 'X — that answers "<question>"'), and counts how
many get flagged: a detector that learned "short = faithful" flags nearly all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from opsgate.evals.hallucination import HallucinationDetector
from opsgate.evals.hallucination.measure import Figures, best_threshold, figures
from opsgate.evals.hallucination.model import SupportModel
from opsgate.evals.hallucination.text import tokens
from opsgate.tools.hallucination import data
from opsgate.tools.hallucination.data import Example
from opsgate.tools.hallucination.train import FeatureCache, TrainConfig, out_of_fold, train

PROBE_FORMS: tuple[Callable[[Example], str], ...] = (
    lambda ex: f"Based on the text, it is {ex.answer}.",
    lambda ex: f'{ex.answer} — that answers "{ex.question.strip()}"',
)
Scorer = Callable[[Sequence[Example]], np.ndarray]


def length_only(rows: Sequence[Example]) -> np.ndarray:
    """Baseline: the answer's length in characters (longer = more likely hallucinated)."""
    return np.array([len(ex.answer) for ex in rows], dtype=np.float64)


def token_overlap(rows: Sequence[Example]) -> np.ndarray:
    """Baseline: the share of the answer's content words that are not in the knowledge."""
    scores = []
    for ex in rows:
        answer = [s for _, s in tokens(ex.answer).content_pairs()]
        known = set(tokens(ex.knowledge).stems)
        scores.append(sum(s not in known for s in answer) / len(answer) if answer else 0.0)
    return np.array(scores, dtype=np.float64)


def _model_scores(model: SupportModel, cache: FeatureCache, rows: Sequence[Example]) -> np.ndarray:
    return model.probabilities(cache(rows))


def probe(rows: Sequence[Example]) -> list[Example]:
    return [
        replace(ex, id=f"{ex.id}:probe{i}", answer=form(ex), source="probe")
        for ex in rows
        if ex.label == 0 and ex.source == "dev"
        for i, form in enumerate(PROBE_FORMS)
    ]


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    dev: Figures
    probe_flagged: float
    extra_recall: float

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            **self.dev.as_dict(),
            "probe_flagged": self.probe_flagged,
            "extra_recall": self.extra_recall,
        }


def cross_validated(examples: Sequence[Example], cfg: TrainConfig) -> list[Report]:
    """The detector and both baselines, nested grouped CV (see the module docstring)."""
    cache = FeatureCache()
    fold_of = data.folds(examples, cfg.folds, cfg.seed + 1)
    names = ("detector", "detector_form_tuned", "length_only", "token_overlap")
    held: dict[str, list[tuple[float, int, bool, str]]] = {n: [] for n in names}
    probed: dict[str, list[bool]] = {n: [] for n in names}
    for k in range(cfg.folds):
        fitting = [ex for ex, f in zip(examples, fold_of, strict=True) if f != k]
        testing = [ex for ex, f in zip(examples, fold_of, strict=True) if f == k]
        model = train(fitting, cfg, cache)
        scorers: dict[str, tuple[Scorer, float]] = {
            "detector": (partial(_model_scores, model, cache), model.threshold)
        }
        labels = [ex.label for ex in fitting]
        augmented, oof = out_of_fold(fitting, cfg, cache)
        original = np.array([ex.source != "sentence_form" for ex in augmented])
        oof_labels = np.array([ex.label for ex in augmented])
        tuned = best_threshold(oof[original], oof_labels[original])
        scorers["detector_form_tuned"] = (scorers["detector"][0], tuned)
        for name, baseline in (("length_only", length_only), ("token_overlap", token_overlap)):
            scorers[name] = (baseline, best_threshold(baseline(fitting), labels))
        probes = probe(testing)
        for name, (score, threshold) in scorers.items():
            for ex, s in zip(testing, score(testing), strict=True):
                held[name].append((float(s), ex.label, bool(s >= threshold), ex.source))
            probed[name] += [bool(s >= threshold) for s in score(probes)]
    reports = []
    for name in names:
        rows = held[name]
        dev = [(s, y, f) for s, y, f, src in rows if src == "dev"]
        extra = [f for _, _, f, src in rows if src != "dev"]
        reports.append(
            Report(
                name,
                _pooled(dev),
                float(np.mean(probed[name])),
                float(np.mean(extra)) if extra else float("nan"),
            )
        )
    return reports


def _pooled(rows: Sequence[tuple[float, int, bool]]) -> Figures:
    """Figures over every fold's rows, each flagged at its own fold's threshold."""
    flags = np.array([f for _, _, f in rows], dtype=np.float64)
    pooled = figures(flags, [y for _, y, _ in rows], 0.5)
    from_scores = figures([s for s, _, _ in rows], [y for _, y, _ in rows], 0.5)
    return replace(pooled, auroc=from_scores.auroc, threshold=float("nan"))


def general(examples: Sequence[Example], detector: HallucinationDetector) -> list[Report]:
    """halueval_general with the shipped detector (no knowledge: every claim is unsupported)
    and the length baseline (AUROC only: no threshold is tuned on these rows)."""
    scores = [detector.score(ex.knowledge, ex.question, ex.answer).score for ex in examples]
    labels = [ex.label for ex in examples]
    nan = float("nan")
    shipped = figures(scores, labels, detector.threshold)
    lengths = figures(length_only(examples), labels, float("inf"))
    return [
        Report("detector (shipped)", shipped, nan, nan),
        Report("length_only (AUROC only)", lengths, nan, nan),
    ]


def _table(title: str, reports: Sequence[Report]) -> str:
    lines = [
        f"### {title}",
        "",
        "| scorer | rows | precision | recall | F1 | accuracy | AUROC | probe flagged |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in reports:
        d = r.dev
        lines.append(
            f"| {r.name} | {d.rows} | {d.precision:.3f} | {d.recall:.3f} | {d.f1:.3f} | "
            f"{d.accuracy:.3f} | {d.auroc:.3f} | {r.probe_flagged:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m opsgate.tools.hallucination.evaluate", description=__doc__
    )
    parser.add_argument("--data", type=Path, default=None, help="folder with halueval_qa/")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    qa = cross_validated(data.load_qa(args.data), TrainConfig())
    root = args.data or data.default_data_dir()
    general_rows = data.load_general(root) if (root / "halueval_general").exists() else []
    gen = general(general_rows, HallucinationDetector.load()) if general_rows else []
    if args.json:
        out = {"halueval_qa": [r.as_dict() for r in qa], "halueval_general": []}
        out["halueval_general"] = [r.as_dict() for r in gen]
        print(json.dumps(out, indent=2))
        return 0
    print(_table("HaluEval QA dev, nested grouped 5-fold cross-validation", qa))
    extra = next(r.extra_recall for r in qa if r.name == "detector")
    print(f"\nextra hallucinated answers (train.jsonl) caught when held out: {extra:.3f}\n")
    if gen:
        print(_table("HaluEval general dev (no knowledge), shipped detector", gen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
