"""Held-out quality of the injection detector next to its baselines (`python -m bench guard`).

Held-out = the part of the dev files `opsgate.tools.injection.data.split` sets aside (grouped,
stratified, never read by training or calibration). The baselines get thresholds the way the
detector does, on the training part: the length-only baseline ranks by character count
(jailbreaks are long, benign prompts short in the dev file), the rule baselines flag when a
rule family fires. Recall at x% FPR is an operating-point view: the threshold that flags x% of
the held-out benign prompts, applied to every source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bench.report import Grid, pct
from opsgate.guard.injection import InjectionDetector
from opsgate.guard.injection.detector import HIGH_RULES
from opsgate.guard.normalize import normalize
from opsgate.tools.injection.calibrate import prompt_threshold, threshold_at
from opsgate.tools.injection.data import Example
from opsgate.tools.injection.evaluate import Scored, by, rates, recall_at_fpr, score_all
from opsgate.tools.injection.train import TrainConfig

FPRS = (0.01, 0.02, 0.05)
NO_CONTEXT = " (no system prompt)"
"""Suffix of a source scored again without its system prompt (the context features off)."""


@dataclass(frozen=True, slots=True)
class Baselines:
    """Per held-out row: its length-only flag and score, and which rule families fired."""

    length_flags: list[bool]
    lengths: list[float]
    fired: list[frozenset[str]]


@dataclass(frozen=True, slots=True)
class Quality:
    scored: list[Scored]
    baselines: Baselines
    without_context: list[Scored]
    """The held-out rows that have a system prompt, scored without it."""


def measure(
    detector: InjectionDetector, fitting: Sequence[Example], heldout: Sequence[Example]
) -> Quality:
    cfg = TrainConfig()
    lengths = np.array([float(len(ex.text)) for ex in fitting])
    prompt_limit = prompt_threshold(fitting, lengths, cfg.target_fpr, cfg.source_fpr)
    clean_docs = np.array([len(ex.text) for ex in fitting if ex.untrusted and not ex.label])
    doc_limit = threshold_at(clean_docs.astype(float), cfg.target_fpr)
    baselines = Baselines(
        [len(ex.text) >= (doc_limit if ex.untrusted else prompt_limit) for ex in heldout],
        [float(len(ex.text)) for ex in heldout],
        [detector.fired(normalize(ex.text), ex.system_prompt) for ex in heldout],
    )
    bare = [replace(ex, system_prompt=None) for ex in heldout if ex.system_prompt]
    return Quality(score_all(detector, heldout), baselines, score_all(detector, bare))


def _row(
    part: str, name: str, rows: Sequence[Scored], scores: Sequence[float] | None
) -> tuple[str, ...]:
    r = rates(rows)
    hard = rates(s for s in rows if s.example.hard_negative)
    labels = [s.example.label for s in rows]
    at_fpr = [pct(recall_at_fpr(scores, labels, f)) if scores else "-" for f in FPRS]
    return (
        part,
        name,
        f"{r.positives} / {r.negatives}",
        pct(r.tpr),
        pct(r.fpr),
        pct(r.precision),
        pct(hard.fpr),
        *at_fpr,
    )


def overall_grid(q: Quality) -> Grid:
    overall = Grid(
        "Held-out: the detector and baselines",
        (
            "rows",
            "detector",
            "attacks / benign",
            "TPR",
            "FPR",
            "precision",
            "FPR hard neg.",
            *(f"R@{f:.0%} FPR" for f in FPRS),
        ),
    )
    b = q.baselines
    indexed = list(enumerate(q.scored))
    parts = {
        "prompts": [i for i, s in indexed if not s.example.untrusted],
        "documents": [i for i, s in indexed if s.example.untrusted],
        "all": [i for i, _ in indexed],
    }
    for part, idx in parts.items():
        rows = [q.scored[i] for i in idx]
        flagged: dict[str, Callable[[int], bool]] = {
            "rules only (high)": lambda i: bool(b.fired[i] & HIGH_RULES),
            "rules only (any)": lambda i: bool(b.fired[i]),
            "length only": lambda i: b.length_flags[i],
        }
        overall.rows.append(_row(part, "shipped detector", rows, [s.score for s in rows]))
        for name, flag in flagged.items():
            as_flagged = [Scored(q.scored[i].example, 0.0, flag(i)) for i in idx]
            scores = [b.lengths[i] for i in idx] if name == "length only" else None
            overall.rows.append(_row(part, name, as_flagged, scores))
    overall.notes.append(
        "R@x% FPR: recall at the threshold that flags x% of the held-out benign rows (an "
        "operating-point view; the TPR/FPR columns use the thresholds chosen on training data)."
    )
    return overall


def _cutoffs(scores: Sequence[float], labels: Sequence[int]) -> list[float]:
    """The threshold flagging at most x% of the benign rows, for each x in `FPRS` (ties at the
    threshold are not flagged, as in `recall_at_fpr`)."""
    negatives = np.sort(np.array([s for s, y in zip(scores, labels, strict=True) if not y]))
    found = []
    for fpr in FPRS:
        allowed = int(np.floor(fpr * len(negatives)))
        found.append(float(negatives[::-1][allowed]) if allowed < len(negatives) else -np.inf)
    return found


def source_grid(q: Quality) -> Grid:
    """Prompts per source: the share flagged (recall for attacks, FPR for benign sources) at
    the shipped threshold and at the thresholds that flag 1/2/5% of all held-out benign
    prompts, for the detector and for the length-only baseline."""
    grid = Grid(
        "Held-out prompts per source: share flagged at the shipped threshold and at 1/2/5% "
        "overall FPR (detector | length only)",
        (
            "source",
            "label",
            "rows",
            "shipped",
            *(f"@{f:.0%}" for f in FPRS),
            *(f"length @{f:.0%}" for f in FPRS),
        ),
    )
    prompts = [(i, s) for i, s in enumerate(q.scored) if not s.example.untrusted]
    labels = [s.example.label for _, s in prompts]
    cut = _cutoffs([s.score for _, s in prompts], labels)
    length_cut = _cutoffs([q.baselines.lengths[i] for i, _ in prompts], labels)
    extra = [(-1, s) for s in q.without_context if not s.example.untrusted]
    groups: dict[tuple[int, str], list[tuple[int, Scored]]] = {}
    for i, s in [*prompts, *extra]:
        name = s.example.source + (NO_CONTEXT if i < 0 else "")
        groups.setdefault((-s.example.label, name), []).append((i, s))
    for (neg_label, name), rows in sorted(groups.items()):
        flags = [s.flagged for _, s in rows]
        at = [np.mean([s.score > c for _, s in rows]) for c in cut]
        with_length = all(i >= 0 for i, _ in rows)
        by_length = [
            pct(float(np.mean([q.baselines.lengths[i] > c for i, _ in rows])))
            if with_length
            else "-"
            for c in length_cut
        ]
        grid.rows.append(
            (
                name,
                "attack" if neg_label else "benign",
                str(len(rows)),
                pct(float(np.mean(flags))),
                *(pct(float(a)) for a in at),
                *by_length,
            )
        )
    grid.notes.append(
        f"`{NO_CONTEXT.strip()}`: the same rows scored without the system prompt they were "
        "sent under (the context features off), as a caller that does not pass it would see."
    )
    return grid


def kind_grid(q: Quality) -> Grid:
    kind = Grid(
        "Held-out, per attack kind (shipped detector)", ("attack_kind", "rows", "TPR", "FPR")
    )
    for name, r in by(q.scored, lambda ex: ex.attack_kind).items():
        kind.rows.append((name, str(r.positives + r.negatives), pct(r.tpr), pct(r.fpr)))
    return kind


def quality_grids(q: Quality) -> list[Grid]:
    return [overall_grid(q), source_grid(q), kind_grid(q)]
