"""Reading a judge's answer: the first JSON object in it (code fences and chatter around it
allowed), checked field by field; anything else is `UnparseableAnswer`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_SCANNED = 20_000
_SCORE = re.compile(r'"?score"?\s*[:=]\s*(\d+(?:\.\d+)?)', re.IGNORECASE)


class UnparseableAnswer(ValueError):
    """The judge's answer holds no usable verdict."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A 1-5 judgement normalised to [0, 1], or a pairwise winner (`A`, `B`, `tie`)."""

    value: float | None
    winner: str | None
    reasoning: str


def first_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    head = text[:MAX_SCANNED]
    for match in re.finditer(r"\{", head):
        try:
            found, _ = decoder.raw_decode(head, match.start())
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def parse_score(text: str) -> Verdict:
    found = first_object(text)
    raw: Any = None if found is None else found.get("score")
    if raw is None and (match := _SCORE.search(text[:MAX_SCANNED])):
        raw = match.group(1)
    try:
        score = float(raw)
    except (TypeError, ValueError):
        raise UnparseableAnswer(f"no score in the judge's answer: {text[:200]!r}") from None
    if math.isnan(score) or not 1.0 <= score <= 5.0:
        raise UnparseableAnswer(f"judge score {raw!r} is outside 1-5")
    reasoning = str((found or {}).get("reasoning") or "")
    return Verdict((score - 1.0) / 4.0, None, reasoning)


def parse_winner(text: str) -> Verdict:
    found = first_object(text) or {}
    winner = str(found.get("winner", "")).strip().strip('"').upper()
    if winner not in ("A", "B", "TIE"):
        raise UnparseableAnswer(f"no winner A/B/tie in the judge's answer: {text[:200]!r}")
    return Verdict(None, "tie" if winner == "TIE" else winner, str(found.get("reasoning") or ""))
