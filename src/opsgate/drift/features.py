"""What drift keeps of one trace: small features of its prompt and answer (pure functions).

With bodies kept (`traces.store_bodies: masked|full`) the prompt's last user turn and the answer
give lengths, a language guess, a refusal flag and the text to embed; masked bodies are fine
(placeholders change little of a topic). With bodies off, only metadata is used: completion
tokens, finish reason, tool calls and the malformed-JSON flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from opsgate.trace import TraceRecord

REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i won'?t|i am unable|"
    r"i'?m unable|i'?m not able|as an ai|unfortunately,? i can)",
    re.IGNORECASE,
)
_STOPWORDS = {
    "en": {"the", "and", "is", "of", "to", "in", "what", "how", "you", "it", "a", "for"},
    "es": {"el", "la", "de", "que", "y", "en", "los", "es", "por", "qué", "cómo", "una"},
    "fr": {"le", "la", "les", "de", "et", "est", "un", "une", "que", "pour", "dans", "quoi"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "wie", "was", "ich"},
    "it": {"il", "di", "che", "e", "la", "per", "non", "un", "una", "sono", "come", "cosa"},
    "pt": {"o", "de", "que", "e", "do", "da", "em", "um", "uma", "para", "não", "como"},
}
_SCRIPTS = (
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Features:
    """One sampled trace as drift sees it."""

    trace_id: str
    created_at: float
    model: str
    prompt_name: str | None
    key_id: str | None
    team_id: str | None
    user_id: str | None
    end_user: str | None
    completion_tokens: int
    finish_reason: str | None
    tool_calls: bool
    json_valid: bool | None
    prompt_chars: int | None = None
    answer_chars: int | None = None
    language: str | None = None
    refusal: bool | None = None
    text: str | None = None
    """The prompt's last user turn, to embed (never stored by drift)."""


def language_of(text: str) -> str:
    """A coarse language guess: the script for non-Latin text, else the language whose common
    words occur most (`und` when none does). Good enough to see a mix change, not to label."""
    for code, script in _SCRIPTS:
        if len(script.findall(text)) * 3 > len(text):
            return code
    words = [w.lower() for w in _WORD.findall(text)[:200]]
    best, hits = "und", 0
    for code, common in _STOPWORDS.items():
        found = sum(1 for w in words if w in common)
        if found > hits:
            best, hits = code, found
    return best


def is_refusal(answer: str) -> bool:
    """Whether an answer opens like a refusal ("I'm sorry, but I can't ...")."""
    return bool(REFUSAL.match(answer.strip()[:200]))


def last_user_text(request: Any) -> str | None:
    """The text of the last user message of a chat request body (parts joined)."""
    if not isinstance(request, dict):
        return None
    for message in reversed(request.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [p.get("text", "") for p in content if isinstance(p, dict)]
            return " ".join(p for p in parts if isinstance(p, str))
    return None


def _asked_json(request: Any) -> bool:
    fmt = request.get("response_format") if isinstance(request, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def features_of(trace: TraceRecord) -> Features:
    """The features of a finished chat trace (its bodies in plain text, if any)."""
    request: Any = None
    if trace.request_body is not None:
        try:
            request = orjson.loads(trace.request_body)
        except orjson.JSONDecodeError:
            request = None
    text = last_user_text(request)
    answer = trace.response_body.decode("utf-8", "replace") if trace.response_body else None
    json_valid: bool | None = None
    if trace.malformed == "invalid_json":
        json_valid = False
    elif _asked_json(request):
        json_valid = True
    return Features(
        trace_id=trace.trace_id,
        created_at=trace.started_at,
        model=trace.model_requested,
        prompt_name=trace.prompt_name,
        key_id=trace.key_id,
        team_id=trace.team_id,
        user_id=trace.user_id,
        end_user=trace.end_user,
        completion_tokens=trace.completion_tokens,
        finish_reason=trace.finish_reason,
        tool_calls=trace.finish_reason == "tool_calls",
        json_valid=json_valid,
        prompt_chars=len(text) if text is not None else None,
        answer_chars=len(answer) if answer is not None else None,
        language=language_of(text) if text else None,
        refusal=is_refusal(answer) if answer is not None else None,
        text=text,
    )
