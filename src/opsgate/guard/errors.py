"""The errors a guard answers with: OpenAI-shaped, with a code a client can branch on.

Blocks are 400 (the request, or the answer it drew out, breaks the caller's policy); text
beyond the scan limit under an `oversize: block` policy is 413. (A sensitive request with
nowhere private to go is routing's 403 `no_private_deployment`.) Messages name entity types,
never the values found.
"""

from __future__ import annotations

from collections.abc import Iterable

from opsgate.errors import BadRequestError, PayloadTooLargeError

INJECTION = "prompt_injection_detected"
PII = "pii_detected"
SECRET = "secret_detected"
OUTPUT_PII = "output_pii_detected"
OUTPUT_SECRET = "output_secret_detected"
MODERATION = "content_blocked"
OUTPUT_MODERATION = "output_content_blocked"
CANARY = "canary_leaked"
SCAN_LIMIT = "guard_scan_limit_exceeded"


def _names(types: Iterable[str]) -> str:
    return ", ".join(sorted(set(types)))


def injection_blocked(score: float) -> BadRequestError:
    return BadRequestError(
        f"The request was blocked: it looks like a prompt injection (score {score:.2f}).",
        code=INJECTION,
        param="messages",
    )


def data_blocked(check: str, types: Iterable[str]) -> BadRequestError:
    what = "personal data" if check == "pii" else "secrets"
    return BadRequestError(
        f"The request was blocked: it contains {what} ({_names(types)}), which this key's "
        "policy does not allow to be sent.",
        code=PII if check == "pii" else SECRET,
        param="messages",
    )


def output_blocked(check: str, types: Iterable[str]) -> BadRequestError:
    what = "personal data" if check == "pii" else "secrets"
    return BadRequestError(
        f"The answer was blocked: it contains {what} ({_names(types)}) that the request did "
        "not, which this key's policy does not allow to be returned.",
        code=OUTPUT_PII if check == "pii" else OUTPUT_SECRET,
    )


def moderation_blocked(types: Iterable[str], *, output: bool = False) -> BadRequestError:
    where = "answer" if output else "request"
    return BadRequestError(
        f"The {where} was blocked by the content rules ({_names(types)}) of this key's policy.",
        code=OUTPUT_MODERATION if output else MODERATION,
        param=None if output else "messages",
    )


def canary_leaked() -> BadRequestError:
    return BadRequestError(
        "The answer was blocked: it repeats the canary from the system prompt, so the prompt "
        "was leaked (a prompt-extraction attempt).",
        code=CANARY,
    )


def scan_limit(chars: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The request has {chars} characters of text; this key's policy scans at most {limit} "
        "and refuses what it cannot scan.",
        code=SCAN_LIMIT,
        param="messages",
    )
