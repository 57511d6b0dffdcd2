"""`python -m bench guard-pii`: the PII detectors on the labelled dev set, and their speed.

Quality: per entity type, precision and recall on `shared/data/pii/dev.jsonl` (Presidio's
synthetic set), a prediction counting when it overlaps a gold span of the same type. The
detectors were tuned looking only at even `template_id` rows; odd ones are the held-out half,
reported apart. Types the set labels but the gateway does not detect (names, addresses,
organisations: they need an NER model) are listed with their counts, not scored.

Speed: p50/p95 of `Detector.find` (all PII types and secrets) on ~1k-token inputs built from
the dev texts, and of the whole redaction of a chat request.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT
from bench.report import Grid
from opsgate.guard.credentials import SecretsDetector
from opsgate.guard.pii import Detector
from opsgate.guard.redact import Redactor

DATA = REPO_ROOT / ".." / "shared" / "data" / "pii" / "dev.jsonl"
GOLD_TYPES = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
}
"""The dev set's labels that a built-in detector covers, and its name for them."""
WITHIN = {"DATE_OF_BIRTH": "DATE_TIME"}
"""Types the set labels only more broadly: a date of birth found is correct when it overlaps a
gold DATE_TIME (scored for precision only: most gold dates are not birth dates)."""


@dataclass(slots=True)
class Score:
    gold: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.found / self.gold if self.gold else None


@dataclass(slots=True)
class PiiRun:
    rows: int = 0
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    """split (`tuned`, `held-out`, `all`) → type → score."""
    unscored: Counter[str] = field(default_factory=Counter)
    timings_ms: dict[str, list[float]] = field(default_factory=dict)
    input_tokens: int = 0
    background: Counter[str] = field(default_factory=Counter)
    background_texts: int = 0
    background_chars: int = 0


def load(path: Path = DATA) -> list[dict[str, Any]]:
    with path.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(rows: list[dict[str, Any]], detector: Detector) -> PiiRun:
    run = PiiRun(rows=len(rows))
    for split in ("tuned", "held-out", "all"):
        run.scores[split] = {t: Score() for t in (*GOLD_TYPES.values(), *detector.types)}
    for row in rows:
        text: str = row["full_text"]
        gold: list[tuple[str, tuple[int, int]]] = []
        broad = [(s["entity_type"], (s["start_position"], s["end_position"])) for s in row["spans"]]
        for span in row["spans"]:
            kind = GOLD_TYPES.get(span["entity_type"])
            if kind is None:
                run.unscored[span["entity_type"]] += 1
                continue
            gold.append((kind, (span["start_position"], span["end_position"])))
        predicted = [(f.kind, (f.start, f.end)) for f in detector.find(text)]
        split = "tuned" if row["template_id"] % 2 == 0 else "held-out"
        for name in (split, "all"):
            table = run.scores[name]
            for kind, span in gold:
                table[kind].gold += 1
                table[kind].found += any(k == kind and _overlaps(span, p) for k, p in predicted)
            for kind, span in predicted:
                score = table.setdefault(kind, Score())
                score.predicted += 1
                score.correct += any(k == kind and _overlaps(span, g) for k, g in gold) or any(
                    k == WITHIN.get(kind) and _overlaps(span, g) for k, g in broad
                )
    return run


def _long_inputs(rows: list[dict[str, Any]], tokens: int = 1000) -> list[str]:
    """Dev texts joined into inputs of about `tokens` tokens (4 characters a token)."""
    texts = [r["full_text"] for r in rows]
    out: list[str] = []
    i = 0
    for _ in range(50):
        parts: list[str] = []
        size = 0
        while size < tokens * 4:
            parts.append(texts[i % len(texts)])
            size += len(parts[-1]) + 1
            i += 1
        out.append("\n".join(parts))
    return out


def time_it(rows: list[dict[str, Any]], detector: Detector, repeats: int = 5) -> PiiRun:
    run = PiiRun()
    inputs = _long_inputs(rows)
    run.input_tokens = round(statistics.mean(len(t) for t in inputs) / 4)
    find, redact = [], []
    for _ in range(repeats):
        for text in inputs:
            t0 = time.perf_counter()
            detector.find(text)
            find.append((time.perf_counter() - t0) * 1000)
            messages = [{"role": "user", "content": text}]
            t0 = time.perf_counter()
            Redactor(detector).redact_messages(messages)
            redact.append((time.perf_counter() - t0) * 1000)
    run.timings_ms = {"detect (PII + secrets)": find, "redact a request": redact}
    return run


UNLABELLED = {
    "halueval_qa": ("knowledge", "question", "answer"),
    "halueval_general": ("query", "response"),
    "injection": ("text",),
    "quora_question_pairs": ("a", "b"),
}
"""Other dev sets: ordinary prose with no PII labels, for what the detectors fire on there."""


def background(detector: Detector) -> tuple[Counter[str], int, int]:
    """(findings by type, texts, characters) over the unlabelled sets that are present."""
    found: Counter[str] = Counter()
    texts = chars = 0
    for name, keys in UNLABELLED.items():
        path = DATA.parent.parent / name / "dev.jsonl"
        if not path.exists():
            continue
        for row in load(path):
            for key in keys:
                text = row.get(key)
                if isinstance(text, str):
                    texts, chars = texts + 1, chars + len(text)
                    found.update(f.kind for f in detector.find(text))
    return found, texts, chars


def run_guard_pii() -> PiiRun:
    rows = load()
    detector = Detector(region="US", secrets=SecretsDetector())
    run = evaluate(rows, detector)
    run.background, run.background_texts, run.background_chars = background(detector)
    timed = time_it(rows, detector)
    run.timings_ms, run.input_tokens = timed.timings_ms, timed.input_tokens
    return run


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def pii_grids(run: PiiRun) -> list[Grid]:
    quality = Grid(
        f"PII detectors on pii/dev.jsonl ({run.rows} rows; a prediction counts when it overlaps"
        " a gold span of its type)",
        ("type", "split", "gold", "recall", "predicted", "precision"),
    )
    for kind in run.scores["all"]:
        for split in ("tuned", "held-out", "all"):
            s = run.scores[split][kind]
            if s.gold or s.predicted:
                quality.rows.append(
                    (kind, split, str(s.gold), _pct(s.recall), str(s.predicted), _pct(s.precision))
                )
    unscored = ", ".join(f"{k} {v}" for k, v in run.unscored.most_common())
    quality.notes.append(f"labelled but not detected (they need NER): {unscored}")
    other = Grid(
        f"Findings on {run.background_texts:,} unlabelled texts "
        f"({run.background_chars / 1e6:.1f} M characters) from the other dev sets",
        ("type", "findings", "per 1,000 texts"),
    )
    for kind, n in run.background.most_common():
        other.rows.append((kind, str(n), f"{n * 1000 / max(1, run.background_texts):.2f}"))
    other.notes.append(
        "these sets carry no PII labels: a finding there is a false alarm or a real value in "
        "the text (many are: example e-mails, birth dates of public people in Wikipedia text)"
    )
    speed = Grid(
        f"Speed on ~{run.input_tokens}-token inputs (ms, one process)", ("step", "p50", "p95", "n")
    )
    for name, values in run.timings_ms.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        speed.rows.append(
            (name, f"{statistics.median(ordered):.3f}", f"{p95:.3f}", str(len(values)))
        )
    return [quality, other, speed]


def pii_markdown(run: PiiRun, note: str) -> str:
    lines = ["## PII and secrets detectors (`python -m bench guard-pii`)", "", note, ""]
    for grid in pii_grids(run):
        lines += [f"**{grid.title}**", "", grid.markdown(), ""]
        lines += [f"{n[0].upper()}{n[1:]}." for n in grid.notes]
        lines.append("")
    return "\n".join(lines)
