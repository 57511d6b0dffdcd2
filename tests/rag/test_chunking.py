"""Chunking invariants (property-based) and the structure it respects."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsgate.rag.chunking import Span, chunk, count_tokens
from opsgate.rag.model import ChunkSettings
from opsgate.rag.parse import Section, parse

WORDS = st.sampled_from(
    ["alpha", "beta", "gamma", "delta", "x", "émigré", "数据", "3.14", "end.", "why?", "a-b"]
)
PIECES = st.one_of(WORDS, st.sampled_from([" ", "  ", "\n", "\n\n", ". ", "# ", "\t", "!"]))
TEXTS = st.lists(PIECES, min_size=0, max_size=400).map("".join)


def _covered(text: str, spans: list[Span]) -> bool:
    marks = bytearray(len(text))
    for span in spans:
        marks[span.start : span.end] = b"\x01" * (span.end - span.start)
    return all(marks)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    text=TEXTS,
    max_tokens=st.integers(min_value=1, max_value=40),
    overlap_share=st.floats(min_value=0.0, max_value=0.9),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_every_character_is_in_a_chunk_and_sizes_are_bounded(
    text: str, max_tokens: int, overlap_share: float, cuts: list[int]
) -> None:
    overlap = min(int(max_tokens * overlap_share), max_tokens - 1)
    sections = [Section(c % (len(text) or 1), (f"h{c}",)) for c in cuts]
    spans = chunk(text, sections, ChunkSettings(max_tokens, overlap))
    assert _covered(text, spans)
    for span in spans:
        assert 0 <= span.start < span.end <= len(text)
        assert span.tokens == count_tokens(text[span.start : span.end])
        assert span.tokens <= max_tokens
    assert [s.start for s in spans] == sorted(s.start for s in spans)


def test_sections_are_chunked_apart_and_carry_their_headings() -> None:
    body = "Install the agent. " * 40
    doc = (
        "# Guide\n\nIntro text that is long enough to stand alone as a chunk here.\n\n"
        f"## Install\n\n{body}\n\n## Use\n\nRun it daily and check the log output.\n"
    )
    parsed = parse(doc.encode(), "guide.md")
    spans = chunk(parsed.text, parsed.sections, ChunkSettings(64, 8))
    heads = [s.headings for s in spans]
    assert heads[0] == ("Guide",)
    assert ("Guide", "Install") in heads
    assert heads[-1] == ("Guide", "Use")
    install_start = doc.index("## Install")
    use_start = doc.index("## Use")
    for span in spans:  # the boundaries between sections are never inside a chunk
        assert not span.start < install_start < span.end
        assert not span.start < use_start < span.end


def test_long_text_breaks_at_sentences_with_overlap() -> None:
    text = " ".join(f"Sentence number {i} ends here." for i in range(60))
    spans = chunk(text, [], ChunkSettings(40, 10))
    assert len(spans) > 3
    for first, second in itertools.pairwise(spans):
        assert text[first.end - 2] == "." or text[first.end - 1] == " "  # ended after a sentence
        assert second.start < first.end  # overlap
        assert text[second.start :].startswith("Sentence")  # the overlap starts a sentence
