"""Support features: how much of what an answer adds to the question the knowledge accounts
for.

The answer is first reduced to its *claim*: its words minus function words, framing words
("according to the text") and the words of the question it restates. Every feature describes
that claim (shares, yes/no flags, counts of unsupported words) and none is the answer's length,
so "Delhi" and "The Oberoi family's hotel company is based in Delhi." get the same claim
features. This is deliberate: in HaluEval QA faithful answers are short spans and hallucinated
ones full sentences, and a detector that learned the form would flag every real,
sentence-shaped answer.

One feature looks at form, on purpose: a whole answer copied verbatim from the knowledge is
supported, whatever its length. Training adds faithful answers rewritten as sentences, so the
model does not learn the converse (not verbatim = hallucinated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsgate.evals.hallucination.text import NEGATIONS, YES_NO, Tokens, is_number, tokens

FEATURE_NAMES = (
    "unsupported_share",
    "unsupported_words",
    "claim_in_knowledge",
    "longest_run_share",
    "supported_words",
    "new_numbers",
    "new_names",
    "new_negation",
    "yes_no",
    "no_claim",
    "char_trigram_cover",
    "verbatim_span",
)
Floats = npt.NDArray[np.float64]


def _trigrams(words: Sequence[str]) -> set[str]:
    grams: set[str] = set()
    for word in words:
        padded = f" {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def longest_run(claim: Sequence[str], knowledge: Sequence[str]) -> int:
    """The longest run of consecutive claim words that also appears, in order, in the
    knowledge (dynamic programming over positions of equal words)."""
    positions: dict[str, list[int]] = {}
    for j, word in enumerate(knowledge):
        positions.setdefault(word, []).append(j)
    best = 0
    previous: dict[int, int] = {}
    for word in claim:
        current = {j: previous.get(j - 1, 0) + 1 for j in positions.get(word, ())}
        best = max(best, *current.values()) if current else best
        previous = current
    return best


@dataclass(frozen=True, slots=True)
class Analysis:
    """One answer's feature vector (in `FEATURE_NAMES` order) and the claim words the
    knowledge does not contain (what a user reads as the reason)."""

    vector: Floats
    unsupported: tuple[str, ...]


def analyse(knowledge: str, question: str, answer: str) -> Analysis:
    return analyse_tokens(tokens(knowledge), tokens(question), tokens(answer))


def features(knowledge: str, question: str, answer: str) -> Floats:
    return analyse(knowledge, question, answer).vector


def _is_span(answer: Sequence[str], knowledge: Sequence[str]) -> bool:
    return bool(answer) and f" {' '.join(answer)} " in f" {' '.join(knowledge)} "


def analyse_tokens(k: Tokens, q: Tokens, a: Tokens) -> Analysis:
    k_all, q_all = set(k.stems), set(q.stems)
    claim = [(w, s) for w, s in a.content_pairs() if s not in q_all]
    stems = [s for _, s in claim]
    n = len(claim)
    unsupported = [(w, s) for w, s in claim if s not in k_all]
    supported = {s for s in stems if s in k_all}
    run = longest_run(stems, [s for _, s in k.content_pairs()])
    numbers = {w for w in a.words if is_number(w)} - set(k.words) - set(q.words)
    names = {
        s
        for i, (s, cap) in enumerate(zip(a.stems, a.capitalised, strict=True))
        if cap and i > 0 and s not in k_all and s not in q_all
    }
    negated = any(w in NEGATIONS for w in a.words)
    novel = _trigrams([w for w, _ in unsupported])
    values = (
        len(unsupported) / n if n else 0.0,
        math.log1p(len(unsupported)),
        float(n > 0 and run == n),
        run / n if n else 0.0,
        math.log1p(len(supported)),
        math.log1p(len(numbers)),
        math.log1p(len(names)),
        float(negated and not any(w in NEGATIONS for w in k.words + q.words)),
        float(bool(a.words) and set(a.words) <= YES_NO),
        float(n == 0),
        len(novel & _trigrams(k.words)) / len(novel) if novel else 1.0,
        float(_is_span(a.words, k.words)),
    )
    return Analysis(
        np.array(values, dtype=np.float64), tuple(dict.fromkeys(w for w, _ in unsupported))
    )
