"""Fold text into one canonical form before a detector looks at it.

Attackers dodge keyword rules and classifiers with text that reads the same to a model but not to
a regex: zero-width and bidi controls inside words, Cyrillic and Greek look-alike letters,
full-width or mathematical letters, leetspeak (`1gn0r3`), and instructions hidden in base64, hex,
binary, percent-encoding, rot13 or Unicode tag characters. `normalize` undoes all of these and
returns the decoded payloads as separate views, so a detector scans each one and can say which
encoding hid an attack.

The folded form is for analysis only (lower-cased, whitespace collapsed, digits in mixed tokens
turned into letters): never show it to a user or forward it upstream. Decoding is bounded (depth,
number of segments, segment and total sizes), so adversarial input costs linear time.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAX_DEPTH = 3
"""Encodings inside encodings are followed this deep (base64 of hex of base64 ...)."""
MAX_SEGMENTS = 16
"""Decoded payloads kept per call, all depths together."""
MAX_SEGMENT_CHARS = 16_384
"""Longer encoded runs are not decoded (flagged `encoded_oversized` instead)."""
MAX_DECODED_CHARS = 65_536
"""Decoded text kept per call, all segments together."""
MAX_ATTEMPTS = 256
"""Encoded-looking runs tried per call (most of them fail to decode to text)."""
MIN_DECODED_CHARS = 6

_INVISIBLE = (
    "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d\u2060-\u2064"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0100-\U000e01ef"
)
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]+")
_BIDI_RE = re.compile(f"[{_BIDI}]+")
_TAGS_RE = re.compile("[\U000e0000-\U000e007f]+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HIDDEN_RE = re.compile(
    f"[{_INVISIBLE}{_BIDI}\U000e0000-\U000e007f\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
)
"""One pass over the text to learn whether any of the five patterns above needs to run."""

# Look-alikes of Latin letters (Cyrillic, Greek, a few Latin/IPA variants NFKC keeps).
_CONFUSABLES = {
    **dict(zip("асԁеһіјкӏмнорԛѕтуԝхүɡ", "acdehijklmhopqstywxyg", strict=True)),
    **dict(zip("АВСЕНІЈКМОРЅТХУҮ", "abcehijkmopstxyy", strict=True)),  # noqa: RUF001
    **dict(zip("αβεικνορτυχω", "abeiknoptuxw", strict=True)),
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "abezhikmnoptyx", strict=True)),  # noqa: RUF001
    **dict(zip("ıօսɑ", "iosa", strict=True)),  # noqa: RUF001
}
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
_CONFUSABLE_RE = re.compile(f"[{''.join(_CONFUSABLES)}]")
_FEW_NON_ASCII = 64
"""In mostly-ASCII text with up to this many non-ASCII characters every look-alike is looked
at; otherwise (prose in another script) only tokens where a Latin letter touches a non-ASCII
one."""
_ASCII_LETTER_RE = re.compile("[A-Za-z]")

_LEET_TABLE = str.maketrans("0134578@$", "oieastbas")


def _byte_classes(groups: dict[bytes, bytes]) -> bytes:
    """A `bytes.translate` table sending each member byte to its class byte, the rest to `.`:
    class strings let `in` and `find` (C speed) stand in for a regex scan of the whole text."""
    table = bytearray(b"." * 256)
    for cls, members in groups.items():
        for byte in members:
            table[byte] = cls[0]
    return bytes(table)


_LEET_CLASS = _byte_classes({b"a": b"abcdefghijklmnopqrstuvwxyz", b"1": b"0134578@$"})
_HEX_CLASS = _byte_classes({b"h": b"0123456789abcdefABCDEF", b"s": b" :,-"})
_BIT_CLASS = _byte_classes({b"b": b"01", b"s": b" "})
_B64_CLASS = _byte_classes(
    {b"b": b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-="}
)
_SPACE_CLASS = _byte_classes({b" ": b" \t\n\r\x0b\x0c"})
_MIXED_CLASS = _byte_classes(
    {b"a": b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", b"?": b"?"}
)
_PLAIN_ASCII = bytes(range(32, 127)) + b"\t\n\r"

_ROT13_CLUES = re.compile(
    r"\b(?:ignore|instructions?|previous|prompt|system|password|secret|disregard|forget|"
    r"reveal|pretend|jailbreak|rules|you are|the|and|you|your|with|this|that|what)\b",
    re.IGNORECASE,
)
_ROT13_HINTS = (b"gur", b"naq", b"lbh", b"vtaber", b"cerivbhf", b"vafgehpgvbaf", b"flfgrz")
"""rot13 of the, and, you, ignore, previous, instructions, system: a cheap first look."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """A payload found inside the text: `kind` names the encoding, `text` is its folded form."""

    kind: str
    text: str
    depth: int


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """The folded text, each decoded payload, and what folding had to undo (`changes`)."""

    text: str
    decoded: tuple[Decoded, ...] = ()
    changes: frozenset[str] = frozenset()

    @property
    def views(self) -> tuple[str, ...]:
        """Everything a detector should scan: the folded text, then each decoded payload."""
        return (self.text, *(d.text for d in self.decoded))


@dataclass(slots=True)
class _Budget:
    segments: int = MAX_SEGMENTS
    chars: int = MAX_DECODED_CHARS
    attempts: int = MAX_ATTEMPTS
    found: list[Decoded] = field(default_factory=list)
    changes: set[str] = field(default_factory=set)

    def take(self, text: str) -> bool:
        if self.segments <= 0 or len(text) > self.chars:
            self.changes.add("decode_budget_spent")
            return False
        self.segments -= 1
        self.chars -= len(text)
        return True


def normalize(text: str) -> NormalizedText:
    """Fold `text` (see the module docstring); never raises on any `str`, even lone surrogates."""
    budget = _Budget()
    folded = _normalize(text, 0, budget)
    return NormalizedText(folded, tuple(budget.found), frozenset(budget.changes))


def _normalize(text: str, depth: int, budget: _Budget) -> str:
    if text.isascii():  # O(1) in CPython: the common case skips the Unicode work
        nfkc = text
        if text.encode().translate(None, _PLAIN_ASCII):
            nfkc = _CONTROL_RE.sub(" ", text)
            budget.changes.add("control")
    else:
        text = _strip_hidden(text, depth, budget)
        nfkc = unicodedata.normalize("NFKC", text)
        if nfkc != text:
            budget.changes.add("nfkc")
    if depth < MAX_DEPTH:
        _decode_segments(nfkc, depth, budget)
    return _fold(nfkc, budget)


def _strip_hidden(text: str, depth: int, budget: _Budget) -> str:
    """Remove what renders as nothing; Unicode tag characters are ASCII in disguise: decode."""
    if not _HIDDEN_RE.search(text):
        return text
    if _SURROGATE_RE.search(text):
        text = _SURROGATE_RE.sub("\ufffd", text)
        budget.changes.add("invalid_utf8")
    if _TAGS_RE.search(text):
        hidden = " ".join(
            "".join(chr(ord(c) - 0xE0000) for c in run if 0xE0020 <= ord(c) <= 0xE007E)
            for run in _TAGS_RE.findall(text)
        ).strip()
        text = _TAGS_RE.sub("", text)
        _keep("unicode_tags", hidden, depth, budget)
    for name, pattern in (("zero_width", _INVISIBLE_RE), ("bidi", _BIDI_RE)):
        if pattern.search(text):
            text = pattern.sub("", text)
            budget.changes.add(name)
    if _CONTROL_RE.search(text):
        text = _CONTROL_RE.sub(" ", text)
        budget.changes.add("control")
    return text


def _fold(text: str, budget: _Budget) -> str:
    if not text.isascii() and _CONFUSABLE_RE.search(text):
        text = _fold_confusables(text, budget)
    text = text.lower()
    folded = _fold_leet(text)
    if folded is not text:
        budget.changes.add("leetspeak")
    return " ".join(folded.split())


def _fold_leet(text: str) -> str:
    """Fold each token where a letter touches a leet digit or sign (`pr3v10us`, `p@ss`)."""
    classes = text.encode("ascii", "replace").translate(_LEET_CLASS)
    parts: list[str] = []
    done = 0
    for hit in sorted(_find_all(classes, b"a1") + _find_all(classes, b"1a")):
        if hit < done:
            continue
        start = classes.rfind(b".", done, hit) + 1 or done
        end = classes.find(b".", hit)
        end = len(classes) if end < 0 else end
        parts += (text[done:start], text[start:end].translate(_LEET_TABLE))
        done = end
    return "".join((*parts, text[done:])) if parts else text


def _fold_confusables(text: str, budget: _Budget) -> str:
    """Fold look-alikes in each whitespace token that mixes them with Latin letters, and in
    tokens wholly of look-alikes when the text is mostly ASCII (so Russian and Greek prose stay
    as they are). Look-alikes map one character to one, so byte-class indexes stay valid."""
    raw = text.encode("ascii", "replace")  # one byte per character, `?` for non-ASCII
    spaces = raw.translate(_SPACE_CLASS)
    non_ascii = raw.count(b"?")
    if non_ascii <= _FEW_NON_ASCII and 2 * non_ascii < len(raw):
        hits = [m.start() for m in _CONFUSABLE_RE.finditer(text)]
    else:
        mixed = raw.translate(_MIXED_CLASS)
        hits = [at for pair in (b"a?", b"?a") for at in _find_all(mixed, pair)]
    parts: list[str] = []
    done = looked = 0  # folded up to `done`; every token before `looked` already judged
    for hit in sorted(hits):
        if hit < looked:
            continue
        start = spaces.rfind(b" ", looked, hit) + 1 or looked
        end = spaces.find(b" ", hit)
        looked = end = len(text) if end < 0 else end
        token = text[start:end]
        if _ASCII_LETTER_RE.search(token) or _all_confusable(token):
            folded = token.translate(_CONFUSABLE_TABLE)
            if folded != token:
                budget.changes.add("homoglyph")
                parts += (text[done:start], folded)
                done = end
    return "".join((*parts, text[done:])) if parts else text


def _find_all(haystack: bytes, needle: bytes) -> list[int]:
    found = []
    at = haystack.find(needle)
    while at >= 0:
        found.append(at)
        at = haystack.find(needle, at + 1)
    return found


def _all_confusable(word: str) -> bool:
    return all(c in _CONFUSABLES or not c.isalpha() for c in word)


# -- decoders ---------------------------------------------------------------------------------


def _printable(text: str) -> bool:
    if len(text.strip()) < MIN_DECODED_CHARS or not any(c.isalpha() for c in text):
        return False
    good = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return good >= 0.9 * len(text)


def _bytes_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _printable(text) else None


def _from_base64(segment: str) -> str | None:
    if not (any(c.isdigit() or c in "+/=" for c in segment) or segment != segment.lower()):
        return None
    padded = segment.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _bytes_text(raw)


def _from_hex(segment: str) -> str | None:
    digits = re.sub(r"\\x|0x|[\s:,-]", "", segment, flags=re.IGNORECASE)
    if len(digits) % 2:
        return None
    try:
        return _bytes_text(bytes.fromhex(digits))
    except ValueError:
        return None


def _from_binary(segment: str) -> str | None:
    bits = re.sub(r"\s", "", segment)
    usable = len(bits) - len(bits) % 8
    raw = int(bits[:usable], 2).to_bytes(usable // 8, "big") if usable else b""
    return _bytes_text(raw)


def _from_percent(segment: str) -> str | None:
    try:
        text = urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None
    return text if _printable(text) else None


_B64_RE = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{20,}+={0,2}")
_HEX_RE = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}){10,}+(?![0-9A-Za-z])")
_HEX_SPACED_RE = re.compile(r"(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[ :,-]?){10,}(?<=[0-9A-Fa-f])", re.I)
_BINARY_RE = re.compile(r"(?<![01])(?:[01]{8} ?){6,}(?![01])")
_PERCENT_RE = re.compile(r"(?<![\w.~+%-])(?:[\w.~+-]*+%[0-9A-Fa-f]{2}){3,}+[\w.~+-]*+")
"""Each starts only at the start of a run (look-behinds, possessive repeats): linear time."""


_Decoder = Callable[[str], str | None]


def _segments(text: str) -> Iterator[tuple[str, str, _Decoder]]:
    """(kind, encoded run, decoder) for each run that looks encoded. Cheap checks first (long
    tokens, byte classes) so ordinary text never pays for a regex scan of itself."""
    raw = text.encode("ascii", "replace")  # one byte per character
    for start, end in _runs(raw.translate(_B64_CLASS), b"b", 20):
        for match in _B64_RE.finditer(text, start, end):
            yield "base64", match.group(), _from_base64
        for match in _HEX_RE.finditer(text, start, end):
            yield "hex", match.group(), _from_hex
    if b"hhshhshhsh" in raw.translate(_HEX_CLASS) or b"\\x" in raw or b"0x" in raw:
        for match in _HEX_SPACED_RE.finditer(text):
            yield "hex", match.group().strip(), _from_hex
    bits = raw.translate(_BIT_CLASS)
    if b"bbbbbbbbsbbbbbbbbsbbbbbbbb" in bits or b"b" * 24 in bits:
        for match in _BINARY_RE.finditer(text):
            yield "binary", match.group().strip(), _from_binary
    if raw.count(b"%") >= 3:
        for match in _PERCENT_RE.finditer(text):
            yield "percent", match.group(), _from_percent


def _runs(classes: bytes, cls: bytes, min_len: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of at least `min_len` bytes of class `cls`."""
    at = classes.find(cls * min_len)
    while at >= 0:
        end = classes.find(b".", at)
        end = len(classes) if end < 0 else end
        yield at, end
        at = classes.find(cls * min_len, end)


def _decode_segments(text: str, depth: int, budget: _Budget) -> None:
    seen: set[str] = set()
    for kind, segment, decode in _segments(text):
        if segment in seen:
            continue
        if len(segment) > MAX_SEGMENT_CHARS:
            budget.changes.add("encoded_oversized")
            continue
        if budget.segments <= 0 or budget.attempts <= 0:
            budget.changes.add("decode_budget_spent")
            return
        budget.attempts -= 1
        if (decoded := decode(segment)) is not None:
            seen.add(segment)
            _keep(kind, decoded, depth, budget)
    _decode_rot13(text, depth, budget)


def _decode_rot13(text: str, depth: int, budget: _Budget) -> None:
    """rot13 has no alphabet of its own: decode when the rotated text reads far more like
    English (common and trigger words) than the text itself."""
    head = text[:MAX_SEGMENT_CHARS]
    lowered = head.encode("ascii", "replace").lower()
    if sum(1 for word in _ROT13_HINTS if word in lowered) < 2:
        return
    rotated = rot13(head)
    hits = len(_ROT13_CLUES.findall(rotated))
    if hits >= 3 and hits > 2 * len(_ROT13_CLUES.findall(head)):
        _keep("rot13", rotated, depth, budget)


def _keep(kind: str, decoded: str, depth: int, budget: _Budget) -> None:
    if not decoded or not budget.take(decoded):
        return
    slot = len(budget.found)
    budget.found.append(Decoded(kind, "", depth + 1))
    folded = _normalize(decoded, depth + 1, budget)
    budget.found[slot] = Decoded(kind, folded, depth + 1)
    budget.changes.add(f"decoded:{kind}")


def rot13(text: str) -> str:
    """rot13 of ASCII letters (for tests and tools that build attack variants)."""
    return codecs.encode(text, "rot13")
