"""Reading a chat conversation the way scorers want it: the question is the last user turn,
the context is what the application put before it as knowledge (system and developer
messages, tool results). Content given as parts contributes its text parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CONTEXT_ROLES = frozenset({"system", "developer", "tool"})


def text_of(content: Any) -> str | None:
    """A message's text: the string, or its text parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(p["text"])
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        return "\n".join(parts) if parts else None
    return None


def question_and_context(messages: Sequence[Any]) -> tuple[str | None, str | None]:
    """(the last user turn's text, the context messages' texts joined), None where absent."""
    question: str | None = None
    context: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        text = text_of(message.get("content"))
        if text is None:
            continue
        role = message.get("role")
        if role == "user":
            question = text
        elif role in CONTEXT_ROLES and text.strip():
            context.append(text)
    return question, "\n\n".join(context) or None
