"""Hashed character and word n-grams of a folded text, computed with numpy in a few passes.

A per-n-gram Python loop (or `zlib.crc32` per n-gram) costs milliseconds on a 1k-token prompt;
here every n-gram hash comes from one prefix array of a polynomial rolling hash mod 2**64:
`G[i] = sum(c[j] * Q**j, j < i)`, so the hash of `text[l:r]` is `(G[r] - G[l]) * Q**-l` (Q is
odd, hence invertible mod 2**64). Hashes are stable across processes and machines (no salted
`hash()`), so a trained model file stays valid. Buckets are the top `bits` bits of
`(hash ^ salt) * M` (multiplicative hashing), with one salt per feature family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
Ints = npt.NDArray[np.intp]

CHAR_NS: Final = (3, 4, 5)
_Q: Final = 0x100000001B3  # FNV-64 prime: odd
_Q_INV: Final = pow(_Q, -1, 2**64)
_Q_PAIR: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX: Final = np.uint64(0xD6E8FEB86659FD93)
_SALTS: Final = {
    3: np.uint64(0x243F6A8885A308D3),
    4: np.uint64(0x13198A2E03707344),
    5: np.uint64(0xA4093822299F31D0),
    "word": np.uint64(0x082EFA98EC4E6C89),
    "pair": np.uint64(0x452821E638D01377),
}
_ASCII_WORD = np.zeros(128, dtype=bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_'":
    _ASCII_WORD[_c] = True


@dataclass(frozen=True, slots=True)
class Grams:
    """Buckets of a text's n-grams. `chars[k]` holds the `CHAR_NS[k]`-grams, the i-th starting
    at character i; `words[i]` starts at `word_starts[i]`, as does the pair `pairs[i]`."""

    length: int
    chars: tuple[Ints, ...]
    word_starts: Ints
    words: Ints
    pairs: Ints

    def all_buckets(self) -> tuple[Ints, Ints]:
        """(character n-gram buckets, word and word-pair buckets), each concatenated."""
        chars = np.concatenate(self.chars) if self.chars else np.zeros(0, dtype=np.intp)
        return chars, np.concatenate([self.words, self.pairs])


class _Powers:
    """Q**i and Q**-i mod 2**64, grown on demand (doubling) and shared by all calls; the pair
    is replaced as one tuple, so a concurrent reader never sees tables of different sizes."""

    def __init__(self) -> None:
        self.tables = self._build(4096)

    @staticmethod
    def _build(size: int) -> tuple[U64, U64]:
        tables = []
        for base in (_Q, _Q_INV):
            table = np.ones(size, dtype=np.uint64)
            table[1:] = np.cumprod(np.full(size - 1, base, dtype=np.uint64))  # wraps mod 2**64
            tables.append(table)
        return tables[0], tables[1]

    def get(self, size: int) -> tuple[U64, U64]:
        tables = self.tables
        if len(tables[0]) < size:
            tables = self.tables = self._build(max(size, 2 * len(tables[0])))
        return tables


_POWERS = _Powers()


def codepoints(text: str) -> U64:
    """The text's code points (surrogates kept as they are: never raises)."""
    raw = text.encode("utf-32-le", "surrogatepass")
    return np.frombuffer(raw, dtype="<u4").astype(np.uint64)


def _bucket(hashes: U64, salt: np.uint64, shift: np.uint64) -> Ints:
    return (((hashes ^ salt) * _MIX) >> shift).astype(np.intp)


def grams(text: str, bits: int) -> Grams:
    """Every character 3-, 4- and 5-gram, word and word pair of `text`, hashed to `bits` bits."""
    cp = codepoints(text)
    n = len(cp)
    up, down = _POWERS.get(n + 1)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(cp * up[:n], out=prefix[1:])
    shift = np.uint64(64 - bits)
    chars = tuple(
        _bucket((prefix[k:] - prefix[: n - k + 1]) * down[: n - k + 1], _SALTS[k], shift)
        for k in CHAR_NS
        if n >= k
    )
    starts, ends = _words(cp)
    word_hash = (prefix[ends] - prefix[starts]) * down[starts]
    pair_hash = word_hash[:-1] * _Q_PAIR + word_hash[1:]
    return Grams(
        n,
        chars,
        starts,
        _bucket(word_hash, _SALTS["word"], shift),
        _bucket(pair_hash, _SALTS["pair"], shift),
    )


def _words(cp: U64) -> tuple[Ints, Ints]:
    """Start and end of each word: ASCII letters, digits, `_` and `'`, and any non-ASCII code
    point outside the general and CJK punctuation blocks."""
    ascii_word = _ASCII_WORD[np.minimum(cp, 127).astype(np.intp)]
    punct = ((cp >= 0x2000) & (cp < 0x2070)) | ((cp >= 0x3000) & (cp < 0x3040))
    is_word = np.where(cp < 128, ascii_word, ~punct)
    edges = np.diff(np.concatenate([[False], is_word, [False]]).astype(np.int8))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
