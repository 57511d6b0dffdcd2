"""What a live answer gives its scorers: the question, the answer and the context it had.

A live request has no reference answer, so `expected` is always absent (scorers that need one,
`exact` or `correctness`, fail with their reason). The **input** is the last user message; the
**context** (for faithfulness and the hallucination detector) is what the application put
before it as knowledge: the system and developer messages and tool results, joined
(evals/messages.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsgate.evals.messages import question_and_context
from opsgate.evals.scorers import Sample


def sample_from(request: Mapping[str, Any] | None, output: str | None) -> Sample:
    """The scorers' view of one answer; fields the request lacks stay None."""
    messages = request.get("messages") if request is not None else None
    if not isinstance(messages, Sequence) or isinstance(messages, str):
        return Sample(output=output)
    question, context = question_and_context(messages)
    return Sample(question, output, None, context)
