"""The prompt-injection detector: held-out quality next to baselines (`bench.guard_quality`),
and `scan()` latency on ~1k-token inputs (`python -m bench guard`).

The detector's thresholds are the shipped model's, chosen on out-of-fold scores of the training
part; the held-out rows are never read by training or calibration.
"""

from __future__ import annotations

import random
import time
from argparse import Namespace
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.guard_backend import BackendRun, backend_grids, backend_markdown, run_transformer
from bench.guard_quality import Quality, measure, quality_grids
from bench.report import Grid, grids_markdown
from bench.stats import percentile
from opsgate.accounting.tokens import count_text_tokens, get_tokenizer
from opsgate.guard.injection import InjectionDetector
from opsgate.guard.inspection import Scanner
from opsgate.guard.normalize import NormalizedText, normalize
from opsgate.tools.injection.data import Example, default_data_dir, load_all
from opsgate.tools.injection.train import TrainConfig, digest, training_part

TOKENS = 1000
INPUTS_PER_KIND = 60
ROUNDS = 5
CONFIG = TrainConfig()


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
class GuardRun:
    quality: Quality
    latencies: list[Latency]
    tokenizer: str
    split_matches: bool
    thresholds: tuple[float, float]
    other: BackendRun | None = None
    """Another backend on the same rows (`--transformer DIR`)."""


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
    fitting, heldout = training_part(data)
    quality = measure(detector, fitting, heldout)
    tokenizer = get_tokenizer()

    def count(text: str) -> int:
        return count_text_tokens(text, tokenizer)

    progress("guard: latency on ~1k-token inputs")
    inputs = build_inputs(load_all(data), count)
    latencies = measure_latency(detector, inputs, count)
    other = None
    if transformer is not None:
        other = run_transformer(transformer, heldout, inputs, _timed_scan, progress)
    return GuardRun(
        quality,
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
        "source and label); CyberSecEval rows are scored with their system prompt. Trained on "
        "the rest plus `injection/train.jsonl`. Thresholds: "
        f"{run.thresholds[0]:.3f} (prompts), {run.thresholds[1]:.3f} (documents, "
        "`untrusted=True`), chosen on grouped out-of-fold scores of the training part: at most "
        f"{CONFIG.target_fpr:.1%} of the benign prompts of the measured families together and "
        f"{CONFIG.source_fpr:.1%} of each (role-play, code, NotInject, XSTest). The held-out "
        "split "
        + ("matches" if run.split_matches else "DOES NOT match")
        + " the one the shipped model was trained without. See docs/guard-injection.md.",
    ]
    parts += grids_markdown([*quality_grids(run.quality), latency_grid(run)])
    return "\n".join(parts)


def main_guard(
    args: Namespace, note: str, console: Console, progress: Callable[[str], None]
) -> None:
    """The `guard` branch of `python -m bench`."""
    from bench.docs import update_section
    from bench.report import print_grids

    run = run_guard(progress, args.transformer)
    print_grids([*quality_grids(run.quality), latency_grid(run)], console)
    if not run.split_matches:
        console.print("[yellow]the held-out split differs from the model's: retrain it[/]")
    if run.other is not None:
        print_grids(backend_grids(run.other, run.quality.scored), console)
    if not args.no_docs:
        update_section("guard", guard_markdown(run, note))
        if run.other is not None:
            body = backend_markdown(run.other, run.quality.scored, note)
            update_section("guard-transformer", body)
