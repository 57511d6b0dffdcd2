"""Retrieved chunks are untrusted input: each is scanned by the injection detector with its
untrusted threshold (indirect prompt injection) and PII is redacted per policy, before any
reaches the model. Flagged chunks are dropped, spotlighted or block the request (`rag.injection`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opsgate.errors import BadRequestError
from opsgate.guard.inspection import Scanner
from opsgate.rag.context import Passage
from opsgate.rag.model import Hit

MAX_SCAN_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class Screened:
    passages: list[Passage]
    dropped: int
    flagged: int


def screen(
    hits: Sequence[Hit],
    scanner: Scanner | None,
    action: str,
    redact: Callable[[str], str] | None,
) -> Screened:
    """The passages to send, after the injection scan and PII redaction (pure; may block)."""
    passages: list[Passage] = []
    dropped = flagged = 0
    for hit in hits:
        score: float | None = None
        is_attack = False
        if scanner is not None:
            result = scanner.scan(hit.text[:MAX_SCAN_CHARS], untrusted=True)
            score, is_attack = result.score, result.is_attack
        if is_attack:
            flagged += 1
            if action == "block":
                raise BadRequestError(
                    f"a retrieved passage ({hit.path}, chunk {hit.seq}) looks like a prompt "
                    "injection; the request was blocked by policy",
                    code="retrieved_injection",
                    param="knowledge_base",
                )
            if action == "drop":
                dropped += 1
                continue
        text = redact(hit.text) if redact is not None else hit.text
        passages.append(Passage(hit, text, flagged=is_attack, injection_score=score))
    return Screened(passages, dropped, flagged)
