"""Token chunks with overlap that respect headings, paragraphs and sentences.

A token here is a run of word characters or one other non-space character (`\\w+|[^\\w\\s]`):
close to a BPE count for English prose (within ~1.3x) and free to compute, which is what a
chunk budget needs. Every section (a heading and its text) is chunked on its own, so no chunk
spans two headings; a section too small to stand alone (a bare heading) joins the next when
they fit together. Inside a section a chunk ends at the best break before its budget runs out
(a blank line, else a sentence end, else a line end, else a token), and the next one starts
`overlap` tokens earlier. Chunks are spans `[start, end)` of the document's text: together they
cover every character (property-tested), and none holds more than `max_tokens` tokens.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from opsgate.rag.model import ChunkSettings
from opsgate.rag.parse import Section

TOKEN = re.compile(r"\w+|[^\w\s]")
SMALL_SECTION = 12
"""Sections of fewer tokens (a heading alone) are merged into the next when both fit."""
_SENTENCE_END = frozenset(".!?\u3002\uff01\uff1f")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    tokens: int
    headings: tuple[str, ...]


def count_tokens(text: str) -> int:
    return sum(1 for _ in TOKEN.finditer(text))


def chunk(text: str, sections: Sequence[Section], settings: ChunkSettings) -> list[Span]:
    """The chunks of `text` (see the module docstring)."""
    if not text:
        return []
    if settings.max_tokens < 1 or not 0 <= settings.overlap < settings.max_tokens:
        raise ValueError("chunking needs max_tokens >= 1 and 0 <= overlap < max_tokens")
    starts = [m.start() for m in TOKEN.finditer(text)]
    ends = [m.end() for m in TOKEN.finditer(text)]
    spans: list[Span] = []
    snapped = [Section(_snap(starts, ends, s.start), s.headings) for s in sections]
    for first, last, headings in _sections(text, snapped, starts, settings.max_tokens):
        spans.extend(_cut(text, starts, ends, first, last, headings, settings))
    return spans


def _snap(starts: list[int], ends: list[int], pos: int) -> int:
    """A section start inside a token moves to that token's start (a token is never split)."""
    j = bisect.bisect_right(starts, pos) - 1
    return starts[j] if j >= 0 and starts[j] < pos < ends[j] else pos


def _bounds(text: str, sections: Sequence[Section]) -> list[tuple[int, int, tuple[str, ...]]]:
    ordered = sorted(
        {s.start: s for s in sections if 0 <= s.start < len(text)}.values(), key=lambda s: s.start
    )
    if not ordered or ordered[0].start != 0:
        ordered.insert(0, Section(0, ()))
    out = []
    for i, section in enumerate(ordered):
        end = ordered[i + 1].start if i + 1 < len(ordered) else len(text)
        out.append((section.start, end, section.headings))
    return out


def _sections(
    text: str, sections: Sequence[Section], starts: list[int], budget: int
) -> list[tuple[int, int, tuple[str, ...]]]:
    """Section character ranges, tiny ones merged forward."""
    merged: list[tuple[int, int, tuple[str, ...]]] = []
    pending: tuple[int, tuple[str, ...]] | None = None
    for start, end, headings in _bounds(text, sections):
        if pending is not None:
            begin, kept = pending
            if _tokens_between(starts, begin, end) <= budget:
                start, headings = begin, kept or headings
            else:
                merged.append((begin, start, kept))
            pending = None
        if _tokens_between(starts, start, end) < SMALL_SECTION:
            pending = (start, headings)
        else:
            merged.append((start, end, headings))
    if pending is not None:
        begin, kept = pending
        if merged and _tokens_between(starts, merged[-1][0], len(text)) <= budget:
            merged[-1] = (merged[-1][0], len(text), merged[-1][2])
        else:
            merged.append((begin, len(text), kept))
    return merged


def _tokens_between(starts: list[int], a: int, b: int) -> int:
    return bisect.bisect_left(starts, b) - bisect.bisect_left(starts, a)


def _cut(
    text: str,
    starts: list[int],
    ends: list[int],
    a: int,
    b: int,
    headings: tuple[str, ...],
    settings: ChunkSettings,
) -> list[Span]:
    first = bisect.bisect_left(starts, a)
    last = bisect.bisect_left(starts, b)  # tokens [first, last) start inside [a, b)
    budget = settings.max_tokens
    if last - first <= budget:
        return [Span(a, b, last - first, headings)]
    spans: list[Span] = []
    i, begin = first, a
    while True:
        if last - i <= budget:
            spans.append(Span(begin, b, last - i, headings))
            return spans
        k = _break(text, starts, ends, i, i + budget, settings)  # chunk holds tokens [i, k)
        spans.append(Span(begin, starts[k], k - i, headings))
        i = max(k - settings.overlap, i + 1)
        i = _sentence_start(text, starts, ends, i, k)
        begin = starts[i]


def _break(
    text: str, starts: list[int], ends: list[int], i: int, limit: int, settings: ChunkSettings
) -> int:
    """The token index to end before: the best break in the last half of the budget."""
    low = i + max(1, (limit - i) // 2)
    best: tuple[int, int] = (0, limit)
    for k in range(limit, low - 1, -1):
        gap = text[ends[k - 1] : starts[k]]
        if "\n\n" in gap or "\n\r\n" in gap:
            rank = 3
        elif text[ends[k - 1] - 1] in _SENTENCE_END and gap:
            rank = 2
        elif "\n" in gap:
            rank = 1
        else:
            continue
        if rank > best[0]:
            best = (rank, k)
            if rank == 3:
                break
    return best[1]


def _sentence_start(text: str, starts: list[int], ends: list[int], i: int, k: int) -> int:
    """Move an overlap's first token forward to a sentence start when one is near."""
    for j in range(i, k):
        if j > 0 and text[ends[j - 1] - 1] in _SENTENCE_END:
            return j
    return i
