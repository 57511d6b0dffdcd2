"""`python -m bench drift`: the drift tests' calibration and power on real question sets.

Every repetition runs **the monitor code directly** (`opsgate.drift.stats`, the functions
`opsgate.drift.checks` calls on a monitor's two windows), not through the gateway: hundreds of
repetitions of a window of hundreds of requests would take hours through HTTP on two shared
cores. The gateway path itself (sampling, embedding, storing, evaluating, alerting) is covered
by tests/drift/test_gateway.py. Questions come from ../shared/data (one `a` question per pair,
so no two rows of a window paraphrase each other), embedded once with the local MiniLM (the
default drift embedder) or, without the `embed` extra, the hashing embedder (said in the table).

1. No shift: two random halves of the Quora questions, `NULL_REPS` times: the false-alarm rate
   at alpha 0.01 and 0.05 with its Wilson 95% interval.
2. Topic shift: reference Quora, current Quora with 0/10/20/50% medical questions
   (`medical_question_pairs`): detection rate per level and window, the smallest window that
   detects a 20% shift 90% of the time; beside it the length-only baseline (KS on prompt
   length, and PSI > 0.1).
3. Output shift: simulated answers (lengths drawn from the fake upstream's answer lengths'
   spread; refusals as the refusal detector sees them): 15% refusals, or 2x longer answers,
   against one window of the stats monitor's tests (Bonferroni over its statistics).
4. Quality shift: thumbs-up 0.8 -> 0.7: requests to detection for the CUSUM (alarm at the first
   value over its calibrated threshold) against a fixed-window test, both evaluated on windows
   of `QUALITY_WINDOW` scores at alpha 0.01, and their false-alarm rate per window without a
   shift.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Grid, grids_markdown
from opsgate.cache.embed import Embedder, HashingEmbedder
from opsgate.drift import stats

Progress = Callable[[str], None]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NULL_REPS = 1000
NULL_N = 200
POWER_REPS = 100
LEVELS = (0.0, 0.1, 0.2, 0.5)
WINDOWS = (50, 100, 200, 300, 400)
PERMUTATIONS = 199
OUTPUT_REPS = 100
OUTPUT_N = 200
QUALITY_REPS = 200
QUALITY_WINDOW = 500
QUALITY_REFERENCE = 2000
QUALITY_HORIZON = 10
"""Windows after the change a detector gets before it is counted as a miss."""
ALPHA = 0.01


def questions(folder: str) -> list[str]:
    seen: dict[str, None] = {}
    for line in (DATA / folder / "dev.jsonl").read_text().splitlines():
        seen.setdefault(json.loads(line)["a"], None)
    return list(seen)


def embedder() -> Embedder:
    try:
        from opsgate.cache.embed.local import LocalEmbedder

        return LocalEmbedder()
    except Exception:
        return HashingEmbedder(1024)


@dataclass
class DriftStudy:
    embedder: str = ""
    null: dict[float, tuple[int, int]] = field(default_factory=dict)
    power: dict[tuple[float, int], float] = field(default_factory=dict)
    baseline_ks: dict[float, float] = field(default_factory=dict)
    baseline_psi: dict[float, float] = field(default_factory=dict)
    smallest_20: int | None = None
    output: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _mix(
    rng: np.random.Generator,
    quora: np.ndarray[Any, Any],
    medical: np.ndarray[Any, Any],
    n: int,
    share: float,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Indices of a reference window (Quora) and a current window with `share` medical."""
    picked = rng.permutation(len(quora))
    ref = picked[:n]
    k = round(share * n)
    cur_q = picked[n : 2 * n - k]
    cur_m = rng.choice(len(medical), size=k, replace=False)
    return ref, np.concatenate([cur_q, len(quora) + cur_m])


def run_drift(progress: Progress) -> DriftStudy:
    study = DriftStudy()
    quora_texts, medical_texts = (
        questions("quora_question_pairs"),
        questions("medical_question_pairs"),
    )
    model = embedder()
    study.embedder = model.name
    t0 = time.perf_counter()
    progress(f"embedding {len(quora_texts) + len(medical_texts)} questions with {model.name}")
    vectors = asyncio.run(model.embed(quora_texts + medical_texts)).astype(np.float64)
    study.seconds["embed"] = time.perf_counter() - t0
    quora, medical = vectors[: len(quora_texts)], vectors[len(quora_texts) :]
    lengths = np.array([len(t) for t in quora_texts + medical_texts], dtype=float)
    rng = np.random.default_rng(19)

    t0 = time.perf_counter()
    progress(f"no shift: {NULL_REPS} random halves of {NULL_N}+{NULL_N} Quora questions")
    ps = []
    for r in range(NULL_REPS):
        picked = rng.permutation(len(quora))
        x, y = quora[picked[:NULL_N]], quora[picked[NULL_N : 2 * NULL_N]]
        ps.append(stats.energy_test(x, y, permutations=PERMUTATIONS, seed=r).p_value)
    for alpha in (0.01, 0.05):
        study.null[alpha] = (sum(p <= alpha for p in ps), NULL_REPS)
    study.seconds["null"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    everything = np.vstack([quora, medical])
    for n in WINDOWS:
        progress(f"topic shift: window {n}, {POWER_REPS} repetitions per level")
        for share in LEVELS:
            hits = ks_hits = psi_hits = 0
            for r in range(POWER_REPS):
                ref, cur = _mix(rng, quora, medical, n, share)
                p = stats.energy_test(everything[ref], everything[cur], permutations=99, seed=r)
                hits += p.p_value <= ALPHA
                if n == 200:
                    ks = stats.ks_test(lengths[ref], lengths[cur])
                    ks_hits += ks.p_value <= ALPHA
                    psi_hits += ks.effect > 0.1
            study.power[(share, n)] = hits / POWER_REPS
            if n == 200:
                study.baseline_ks[share] = ks_hits / POWER_REPS
                study.baseline_psi[share] = psi_hits / POWER_REPS
    study.smallest_20 = next((n for n in WINDOWS if study.power[(0.2, n)] >= 0.9), None)
    study.seconds["power"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    progress("output shift: 15% refusals, 2x longer answers")
    study.output = _output_shift(rng)
    study.seconds["output"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    progress("quality shift: thumbs-up 0.8 -> 0.7, CUSUM against a fixed window")
    study.quality = _quality_shift(rng)
    study.seconds["quality"] = time.perf_counter() - t0
    return study


def _answers(rng: np.random.Generator, n: int, refusal: float, longer: float) -> tuple[Any, Any]:
    lengths = rng.lognormal(mean=5.5, sigma=0.5, size=n) * longer  # ~245 characters median
    refusals = rng.random(n) < refusal
    lengths[refusals] = 40.0  # "I'm sorry, but I can't help with that."
    return lengths, refusals


def _output_shift(rng: np.random.Generator) -> dict[str, float]:
    """The stats monitor's answer_length (KS) and refusal (chi-square) tests, Bonferroni."""
    out = {}
    for name, refusal, longer in (
        ("none", 0.01, 1.0),
        ("refusals 15%", 0.15, 1.0),
        ("2x longer", 0.01, 2.0),
    ):
        hits = 0
        for _ in range(OUTPUT_REPS):
            la, ra = _answers(rng, OUTPUT_N, 0.01, 1.0)
            lb, rb = _answers(rng, OUTPUT_N, refusal, longer)
            p_len = stats.ks_test(la, lb).p_value
            table = [[int((~ra).sum()), int(ra.sum())], [int((~rb).sum()), int(rb.sum())]]
            p_ref = stats.chi_square(table).p_value
            hits += stats.combine([p_len, p_ref]) <= ALPHA
        out[name] = hits / OUTPUT_REPS
    return out


def _quality_shift(rng: np.random.Generator) -> dict[str, Any]:
    """Windows of `QUALITY_WINDOW` thumbs after the change; requests until each detector says
    drift (a miss after `QUALITY_HORIZON` windows), and each one's false alarms per window."""
    seq: list[float] = []
    fixed: list[float] = []
    false_seq = false_fixed = windows_null = 0
    for r in range(QUALITY_REPS):
        reference = (rng.random(QUALITY_REFERENCE) < 0.8).astype(float)
        null = (rng.random(QUALITY_WINDOW) < 0.8).astype(float)
        c = stats.cusum_test(reference, null, alpha=ALPHA, sims=400, seed=r)
        false_seq += c.alarm_at is not None
        false_fixed += stats.mean_test(reference, null).p_value <= ALPHA
        windows_null += 1
        found_seq = found_fixed = None
        for w in range(QUALITY_HORIZON):
            window = (rng.random(QUALITY_WINDOW) < 0.7).astype(float)
            if found_seq is None:
                c = stats.cusum_test(reference, window, alpha=ALPHA, sims=400, seed=r)
                if c.alarm_at is not None:
                    found_seq = w * QUALITY_WINDOW + c.alarm_at + 1
            if found_fixed is None and stats.mean_test(reference, window).p_value <= ALPHA:
                found_fixed = (w + 1) * QUALITY_WINDOW
            if found_seq is not None and found_fixed is not None:
                break
        seq.append(found_seq if found_seq is not None else float("inf"))
        fixed.append(found_fixed if found_fixed is not None else float("inf"))
    return {
        "sequential_median": float(np.median(seq)),
        "fixed_median": float(np.median(fixed)),
        "sequential_false": (false_seq, windows_null),
        "fixed_false": (false_fixed, windows_null),
    }


def _rate(k: int, n: int) -> str:
    low, high = stats.binomial_interval(k, n)
    return f"{k}/{n} = {k / n:.3f} [{low:.3f}, {high:.3f}]"


def drift_grids(s: DriftStudy) -> list[Grid]:
    null = Grid(
        f"No shift: two random halves of Quora, {NULL_N} + {NULL_N} questions, energy test "
        f"({PERMUTATIONS} permutations), {s.embedder}",
        ("alpha", "false alarms (Wilson 95%)", "within alpha?"),
    )
    for alpha, (k, n) in s.null.items():
        low, _ = stats.binomial_interval(k, n)
        null.rows.append((str(alpha), _rate(k, n), "yes" if low <= alpha else "NO"))
    power = Grid(
        f"Topic shift: share of medical questions in the current window, detection rate at "
        f"alpha {ALPHA} ({POWER_REPS} repetitions per cell, 99 permutations)",
        ("window (requests per side)", *(f"{int(level * 100)}% medical" for level in LEVELS)),
    )
    for n in WINDOWS:
        power.rows.append((str(n), *(f"{s.power[(level, n)]:.2f}" for level in LEVELS)))
    power.notes.append(
        f"smallest window detecting a 20% shift 90% of the time: "
        f"{s.smallest_20 if s.smallest_20 is not None else 'none of ' + str(WINDOWS)}"
    )
    base = Grid(
        f"Baseline at window 200: prompt length only (alpha {ALPHA})",
        ("test", *(f"{int(level * 100)}% medical" for level in LEVELS)),
    )
    base.rows.append(("energy test of embeddings", *(f"{s.power[(lv, 200)]:.2f}" for lv in LEVELS)))
    base.rows.append(("KS on prompt length", *(f"{s.baseline_ks[lv]:.2f}" for lv in LEVELS)))
    base.rows.append(
        ("PSI of prompt length > 0.1", *(f"{s.baseline_psi[lv]:.2f}" for lv in LEVELS))
    )
    output = Grid(
        f"Output shift: detection within one window of {OUTPUT_N} answers (stats monitor: "
        f"answer-length KS and refusal chi-square, Bonferroni, alpha {ALPHA}; simulated answers)",
        ("current window", "detection rate"),
        [(name, f"{rate:.2f}") for name, rate in s.output.items()],
    )
    q = s.quality
    quality = Grid(
        f"Quality shift: thumbs-up 0.8 -> 0.7, windows of {QUALITY_WINDOW} scores, alpha {ALPHA}, "
        f"{QUALITY_REPS} repetitions",
        ("detector", "median requests to detection", "false alarms per window, no shift"),
        [
            ("CUSUM (sequential)", f"{q['sequential_median']:.0f}", _rate(*q["sequential_false"])),
            ("Welch t-test (fixed window)", f"{q['fixed_median']:.0f}", _rate(*q["fixed_false"])),
        ],
    )
    timing = Grid(
        "Bench time (seconds)", ("step", "seconds"), [(k, f"{v:.0f}") for k, v in s.seconds.items()]
    )
    return [null, power, base, output, quality, timing]


def drift_markdown(s: DriftStudy, note: str) -> str:
    parts = [
        "## Drift",
        "",
        "`python -m bench drift`. Every repetition runs the monitor's test functions directly "
        "(`opsgate.drift.stats`, what `opsgate.drift.checks` runs on a monitor's two windows), "
        "not HTTP requests through the gateway; the gateway path is covered by the integration "
        "tests. Questions: one `a` per pair of `quora_question_pairs` and "
        "`medical_question_pairs` (dev files; the published figures use held-out data).",
        "",
        note,
        "",
        *grids_markdown(drift_grids(s)),
    ]
    return "\n".join(parts)
