"""The prompt-injection detector: held-out quality next to baselines, and `scan()` latency on
~1k-token inputs (`python -m bench guard`).

Quality is judged on the held-out part of the labelled sets (`opsgate.tools.injection.data
.split`: grouped, stratified, never read by training); the detector's thresholds are the shipped
model's, chosen on out-of-fold scores of the training part. The length-only baseline scores a
text by its length (jailbreaks are long, benign prompts short): its threshold is set the same way,
on the training part, at the same 2.5% false-positive target.
"""

from __future__ import annotations

import random
import time
from argparse import Namespace
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from bench.guard_backend import BackendRun, backend_grids, backend_markdown, run_transformer
from bench.report import Grid, grids_markdown, pct
from bench.stats import percentile
from opsgate.accounting.tokens import count_text_tokens, get_tokenizer
from opsgate.guard.injection import InjectionDetector
from opsgate.guard.injection.detector import HIGH_RULES
from opsgate.guard.inspection import Scanner
from opsgate.guard.normalize import NormalizedText, normalize
from opsgate.tools.injection.data import Example, default_data_dir, load_all, split
from opsgate.tools.injection.evaluate import Scored, by, rates, recall_at_fpr, score_all
from opsgate.tools.injection.train import TrainConfig, digest, threshold_at

TOKENS = 1000
INPUTS_PER_KIND = 60
ROUNDS = 5
TARGET_FPR = TrainConfig().target_fpr


@dataclass(frozen=True, slots=True)
class Latency:
    kind: str
    inputs: int
    chars: int
    tokens: int
    p50_us: float
    p99_us: float
    normalize_us: float
    rules_us: float
    classifier_us: float


@dataclass(frozen=True, slots=True)
class Baselines:
    """Per held-out row: its length-only flag and score, and which rule families fired."""

    length_flags: list[bool]
    lengths: list[float]
    fired: list[frozenset[str]]


@dataclass(frozen=True, slots=True)
class GuardRun:
    scored: list[Scored]
    baselines: Baselines
    latencies: list[Latency]
    tokenizer: str
    split_matches: bool
    thresholds: tuple[float, float]
    other: BackendRun | None = None
    """Another backend on the same rows (`--transformer DIR`)."""


def _length_flags(fitting: Sequence[Example], heldout: Sequence[Example]) -> list[bool]:
    limits = {
        kind: threshold_at(
            np.array([len(ex.text) for ex in fitting if ex.untrusted == kind and not ex.label]),
            TARGET_FPR,
        )
        for kind in (False, True)
    }
    return [len(ex.text) >= limits[ex.untrusted] for ex in heldout]


def _row(
    part: str, name: str, rows: Sequence[Scored], scores: Sequence[float] | None
) -> tuple[str, ...]:
    r = rates(rows)
    hard = rates(s for s in rows if s.example.hard_negative)
    labels = [s.example.label for s in rows]
    at_fpr = [pct(recall_at_fpr(scores, labels, f)) if scores else "-" for f in (0.01, 0.03, 0.05)]
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


def quality_grids(run: GuardRun) -> list[Grid]:
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
            "R@1% FPR",
            "R@3% FPR",
            "R@5% FPR",
        ),
    )
    b = run.baselines
    indexed = list(enumerate(run.scored))
    parts = {
        "prompts": [i for i, s in indexed if not s.example.untrusted],
        "documents": [i for i, s in indexed if s.example.untrusted],
        "all": [i for i, _ in indexed],
    }
    for part, idx in parts.items():
        rows = [run.scored[i] for i in idx]
        flagged: dict[str, Callable[[int], bool]] = {
            "rules only (high)": lambda i: bool(b.fired[i] & HIGH_RULES),
            "rules only (any)": lambda i: bool(b.fired[i]),
            "length only": lambda i: b.length_flags[i],
        }
        overall.rows.append(_row(part, "shipped detector", rows, [s.score for s in rows]))
        for name, flag in flagged.items():
            as_flagged = [Scored(run.scored[i].example, 0.0, flag(i)) for i in idx]
            scores = [b.lengths[i] for i in idx] if name == "length only" else None
            overall.rows.append(_row(part, name, as_flagged, scores))
    overall.notes.append(
        "R@x% FPR: recall at the threshold that flags x% of the held-out benign rows (an "
        "operating-point view; the TPR/FPR columns use the thresholds chosen on training data)."
    )
    source = Grid("Held-out, per source (shipped detector)", ("source", "rows", "TPR", "FPR"))
    for name, r in by(run.scored, lambda ex: ex.source).items():
        source.rows.append((name, str(r.positives + r.negatives), pct(r.tpr), pct(r.fpr)))
    kind = Grid(
        "Held-out, per attack kind (shipped detector)", ("attack_kind", "rows", "TPR", "FPR")
    )
    for name, r in by(run.scored, lambda ex: ex.attack_kind).items():
        kind.rows.append((name, str(r.positives + r.negatives), pct(r.tpr), pct(r.fpr)))
    return [overall, source, kind]


def latency_grid(run: GuardRun) -> Grid:
    grid = Grid(
        f"scan() latency on ~{TOKENS}-token inputs ({run.tokenizer} tokens), microseconds",
        (
            "input",
            "inputs",
            "chars",
            "tokens",
            "p50",
            "p99",
            "normalize p50",
            "rules p50",
            "classifier p50",
        ),
    )
    for lat in run.latencies:
        grid.rows.append(
            (
                lat.kind,
                str(lat.inputs),
                f"{lat.chars:,}",
                f"{lat.tokens:,}",
                f"{lat.p50_us:.0f}",
                f"{lat.p99_us:.0f}",
                f"{lat.normalize_us:.0f}",
                f"{lat.rules_us:.0f}",
                f"{lat.classifier_us:.0f}",
            )
        )
    grid.notes.append(
        f"Each input scanned {ROUNDS} times, one call at a time, after a warm-up; the parts are "
        "timed separately on the same inputs (their p50s need not add up to the total's)."
    )
    return grid


def _fill(
    rng: random.Random, texts: Sequence[str], count: Callable[[str], int], budget: int
) -> str:
    """Texts picked at random, joined by blank lines, until `budget` tokens."""
    parts: list[str] = []
    while count("\n\n".join(parts)) < budget:
        parts.append(rng.choice(texts))
    return "\n\n".join(parts)


def build_inputs(examples: Sequence[Example], count: Callable[[str], int]) -> dict[str, list[str]]:
    """~1k-token inputs: benign prompts joined; the same with one attack (cut to 300 tokens)
    inside; retrieved documents joined (scanned as untrusted)."""
    rng = random.Random(7)
    benign = [ex.text for ex in examples if not ex.label and not ex.untrusted]
    attacks = [ex.text for ex in examples if ex.label and not ex.untrusted]
    documents = [ex.text for ex in examples if ex.untrusted]
    inputs: dict[str, list[str]] = {"benign prompts": [], "prompts + attack": [], "documents": []}
    for _ in range(INPUTS_PER_KIND):
        inputs["benign prompts"].append(_fill(rng, benign, count, TOKENS))
        attack = rng.choice(attacks)[:1200]
        filler = _fill(rng, benign, count, TOKENS - count(attack)).split("\n\n")
        filler.insert(rng.randrange(len(filler) + 1), attack)
        inputs["prompts + attack"].append("\n\n".join(filler))
        inputs["documents"].append(_fill(rng, documents, count, TOKENS))
    return inputs


def _p(samples: list[float], pct: float) -> float:
    return percentile(sorted(samples), pct) * 1e6


def _timed(call: Callable[..., object], *args: object) -> float:
    t0 = time.perf_counter()
    call(*args)
    return time.perf_counter() - t0


def _scan(detector: Scanner, text: str, untrusted: bool) -> object:
    return detector.scan(text, untrusted=untrusted)


def _classify(detector: InjectionDetector, folded: NormalizedText) -> float:
    return max(detector.model.logit(view) for view in folded.views)


def measure_latency(
    detector: InjectionDetector, inputs: dict[str, list[str]], count: Callable[[str], int]
) -> list[Latency]:
    found = []
    for kind, texts in inputs.items():
        untrusted = kind == "documents"
        for text in texts[:5]:
            detector.scan(text, untrusted=untrusted)
        total: list[float] = []
        norm: list[float] = []
        rule: list[float] = []
        clf: list[float] = []
        for _ in range(ROUNDS):
            for text in texts:
                total.append(_timed(_scan, detector, text, untrusted))
                norm.append(_timed(normalize, text))
                folded = normalize(text)
                rule.append(_timed(detector.fired, folded))
                clf.append(_timed(_classify, detector, folded))
        found.append(
            Latency(
                kind,
                len(texts),
                round(sum(map(len, texts)) / len(texts)),
                round(sum(map(count, texts)) / len(texts)),
                _p(total, 50),
                _p(total, 99),
                _p(norm, 50),
                _p(rule, 50),
                _p(clf, 50),
            )
        )
    return found


def run_guard(progress: Callable[[str], None] = print, transformer: Path | None = None) -> GuardRun:
    data = default_data_dir()
    if not (data / "injection" / "dev.jsonl").exists():
        raise RuntimeError(f"labelled injection sets missing under {data}")
    detector = InjectionDetector.load()
    progress("guard: held-out split and scores")
    examples = load_all(data)
    fitting, heldout = split(examples)
    scored = score_all(detector, heldout)
    baselines = Baselines(
        _length_flags(fitting, heldout),
        [float(len(ex.text)) for ex in heldout],
        [detector.fired(normalize(ex.text)) for ex in heldout],
    )
    tokenizer = get_tokenizer()

    def count(text: str) -> int:
        return count_text_tokens(text, tokenizer)

    progress("guard: latency on ~1k-token inputs")
    inputs = build_inputs(examples, count)
    latencies = measure_latency(detector, inputs, count)
    other = None
    if transformer is not None:
        other = run_transformer(transformer, heldout, inputs, _timed_scan, progress)
    return GuardRun(
        scored,
        baselines,
        latencies,
        tokenizer.name,
        detector.model.meta.get("heldout_digest") == digest(heldout),
        (detector.threshold, detector.untrusted_threshold),
        other,
    )


def _timed_scan(detector: Scanner, text: str, untrusted: bool) -> float:
    return _timed(_scan, detector, text, untrusted)


def guard_markdown(run: GuardRun, note: str) -> str:
    parts = [
        "## Prompt-injection detector (`python -m bench guard`)",
        "",
        note,
        "",
        "Held-out = 30% of `injection/dev.jsonl` and `indirect_injection/dev.jsonl` (grouped: "
        "near-copies, and clean/poisoned copies of a document, stay on one side; stratified by "
        f"source and label). Thresholds: {run.thresholds[0]:.3f} (prompts), "
        f"{run.thresholds[1]:.3f} (documents, `untrusted=True`), chosen on out-of-fold scores "
        f"of the training part at {TARGET_FPR:.1%} FPR. The held-out split "
        + ("matches" if run.split_matches else "DOES NOT match")
        + " the one the shipped model was trained without. See docs/guard-injection.md.",
    ]
    parts += grids_markdown([*quality_grids(run), latency_grid(run)])
    return "\n".join(parts)


def main_guard(
    args: Namespace, note: str, console: Console, progress: Callable[[str], None]
) -> None:
    """The `guard` branch of `python -m bench`."""
    from bench.docs import update_section
    from bench.report import print_grids

    run = run_guard(progress, args.transformer)
    print_grids([*quality_grids(run), latency_grid(run)], console)
    if not run.split_matches:
        console.print("[yellow]the held-out split differs from the model's: retrain it[/]")
    if run.other is not None:
        print_grids(backend_grids(run.other, run.scored), console)
    if not args.no_docs:
        update_section("guard", guard_markdown(run, note))
        if run.other is not None:
            update_section("guard-transformer", backend_markdown(run.other, run.scored, note))
