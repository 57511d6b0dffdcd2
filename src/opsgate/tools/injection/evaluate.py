"""How well a detector separates labelled rows: rates at its thresholds, recall at a fixed
false-positive rate, and break-downs by source and attack kind (`opsgate guard eval` and
`python -m bench guard` print these)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opsgate.guard.inspection import Scanner
from opsgate.tools.injection.data import Example


class EvalFileError(ValueError):
    """The evaluation file cannot be read as labelled JSONL rows."""


@dataclass(frozen=True, slots=True)
class Scored:
    example: Example
    score: float
    flagged: bool


@dataclass(frozen=True, slots=True)
class Rates:
    positives: int
    negatives: int
    caught: int
    false_alarms: int

    @property
    def tpr(self) -> float:
        return self.caught / self.positives if self.positives else math.nan

    @property
    def fpr(self) -> float:
        return self.false_alarms / self.negatives if self.negatives else math.nan

    @property
    def precision(self) -> float:
        flagged = self.caught + self.false_alarms
        return self.caught / flagged if flagged else math.nan


def score_all(detector: Scanner, examples: Iterable[Example]) -> list[Scored]:
    scored = []
    for ex in examples:
        result = detector.scan(ex.text, untrusted=ex.untrusted, system_prompt=ex.system_prompt)
        scored.append(Scored(ex, result.score, result.is_attack))
    return scored


def rates(scored: Iterable[Scored]) -> Rates:
    pos = neg = caught = false = 0
    for s in scored:
        if s.example.label:
            pos += 1
            caught += s.flagged
        else:
            neg += 1
            false += s.flagged
    return Rates(pos, neg, caught, false)


def by(scored: Sequence[Scored], key: Callable[[Example], str]) -> dict[str, Rates]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[key(s.example)].append(s)
    return {name: rates(rows) for name, rows in sorted(groups.items())}


def recall_at_fpr(scores: Sequence[float], labels: Sequence[int], fpr: float) -> float:
    """Recall at the lowest threshold that flags at most `fpr` of the negatives (ties at the
    threshold count against: a score equal to a negative's is not flagged)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels)
    negatives = np.sort(s[y == 0])[::-1]
    if not len(negatives) or not (y == 1).any():
        return math.nan
    allowed = math.floor(fpr * len(negatives))
    if allowed >= len(negatives):
        return 1.0
    return float(np.mean(s[y == 1] > negatives[allowed]))


def load_labelled(path: Path, *, untrusted: bool = False) -> list[Example]:
    """JSONL rows with `text` (or `prompt`, or `document` = an untrusted document) and `label`
    (0/1 or true/false); `source`, `attack_kind` and `system_prompt` (the instructions the
    text was sent under) are optional."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"cannot read {path}: {exc}") from None
    examples = [_row(path, n, line, untrusted) for n, line in enumerate(lines, 1) if line.strip()]
    if not examples:
        raise EvalFileError(f"{path}: no rows")
    return examples


def _row(path: Path, n: int, line: str, untrusted: bool) -> Example:
    where = f"{path}:{n}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvalFileError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise EvalFileError(f"{where}: expected an object, got {type(row).__name__}")
    field = next((f for f in ("text", "prompt", "document") if isinstance(row.get(f), str)), None)
    if field is None:
        raise EvalFileError(f"{where}: needs a string field `text`, `prompt` or `document`")
    label = row.get("label")
    if label not in (0, 1) or isinstance(label, float):
        raise EvalFileError(f"{where}: `label` must be 0 or 1 (or false/true), got {label!r}")
    return Example(
        id=str(row.get("id", n)),
        text=row[field],
        label=int(label),
        source=str(row.get("source") or "-"),
        attack_kind=str(row.get("attack_kind") or ("none" if not label else "-")),
        hard_negative=bool(row.get("hard_negative")),
        untrusted=untrusted or field == "document" or bool(row.get("untrusted")),
        system_prompt=row["system_prompt"] if isinstance(row.get("system_prompt"), str) else None,
    )
