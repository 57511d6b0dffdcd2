"""Word tokens the support features compare: folded (NFKC, case, accents), with a light stem,
and a list of function words that carry no claim of their own."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_APOSTROPHE = "\u2019"
_WORD = re.compile(rf"[^\W_]+(?:['{_APOSTROPHE}.][^\W_]+)*")
_DIGIT = re.compile(r"\d")
MAX_CHARS = 20_000
"""Longer texts are cut here before tokenising: the features saturate long before."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS = _words(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either few for
    from further had has have having he her here hers herself him himself his how i if in into is
    it its itself just may me might more most must my myself neither nor of off on once only or
    other our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was we
    were what when where which while who whom whose why will with would you your yours yourself
    yourselves s t d ll m re ve"""
)
"""Stop words: an answer may add any of these without adding a claim."""

DISCOURSE_WORDS = _words(
    """according answer answers based context document given information mentioned passage
    provided question says state stated states text"""
)
"""Words that frame an answer ("According to the text, ...") rather than state a fact."""

NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "n't"})
YES_NO = frozenset({"yes", "no"})


def fold(text: str) -> str:
    """NFKC, case-folded, accents removed ("Molière" and "moliere" are one word)."""
    decomposed = unicodedata.normalize("NFKD", text[:MAX_CHARS].casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=4096)
def stem(word: str) -> str:
    """A crude, deterministic stem: plural and possessive endings, then the first 7 letters
    ("films"/"film", "Canadian"/"Canada" stay apart, "directors"/"director" meet)."""
    for suffix in ("'s", "ies", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:7]


@dataclass(frozen=True, slots=True)
class Tokens:
    """A text's words in order (folded), and which of them start with a capital letter in the
    original text (names, mid-sentence)."""

    words: tuple[str, ...]
    capitalised: tuple[bool, ...]

    @property
    def stems(self) -> tuple[str, ...]:
        return tuple(stem(w) for w in self.words)

    def content_pairs(self) -> list[tuple[str, str]]:
        """(word, stem) of each word that is neither a function nor a framing word."""
        return [
            (w, stem(w)) for w in self.words if w not in FUNCTION_WORDS and w not in DISCOURSE_WORDS
        ]


def tokens(text: str) -> Tokens:
    raw = _WORD.findall(text[:MAX_CHARS])
    words = tuple(fold(w).replace(_APOSTROPHE, "'") for w in raw)
    caps = tuple(w[:1].isupper() for w in raw)
    return Tokens(words, caps)


def is_number(word: str) -> bool:
    return bool(_DIGIT.search(word))
