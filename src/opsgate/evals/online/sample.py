"""What a live answer gives its scorers: the question, the answer and the context it had.

A live request has no reference answer, so `expected` is always absent (scorers that need one,
`exact` or `correctness`, fail with their reason). The **input** is the last user message; the
**context** (for faithfulness and the hallucination detector) is what the application put
before it as knowledge: the system and developer messages and tool results, joined. Content
given as parts contributes its text parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsgate.evals.scorers import Sample

CONTEXT_ROLES = frozenset({"system", "developer", "tool"})


def _text(content: Any) -> str | None:
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


def sample_from(request: Mapping[str, Any] | None, output: str | None) -> Sample:
    """The scorers' view of one answer; fields the request lacks stay None."""
    messages = request.get("messages") if request is not None else None
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return Sample(output=output)
    question: str | None = None
    context: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        text = _text(message.get("content"))
        if text is None:
            continue
        role = message.get("role")
        if role == "user":
            question = text
        elif role in CONTEXT_ROLES and text.strip():
            context.append(text)
    return Sample(question, output, None, "\n\n".join(context) or None)
