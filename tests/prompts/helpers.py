"""Prompt specs shared by the prompt tests."""

from __future__ import annotations

from typing import Any

TRIAGE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "params": {"temperature": 0.2, "max_tokens": 300},
    "overrides": ["max_tokens"],
    "description": "Routes a support ticket",
    "variables": {
        "ticket": {"type": "string", "max_length": 4000},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
        "history": {"type": "array", "required": False},
    },
    "messages": [
        {
            "role": "system",
            "content": "You triage tickets for {{ tier }} customers.\n"
            "{% if history %}\nEarlier:\n{% for h in history %}\n- {{ h }}\n{% endfor %}\n"
            "{% endif %}\nAnswer with one queue name.",
        },
        {"role": "user", "content": "Ticket: {{ ticket }}"},
    ],
}


def triage(**changes: Any) -> dict[str, Any]:
    """A copy of TRIAGE with top-level fields replaced."""
    return {**TRIAGE, **changes}


def system_text(version: int) -> dict[str, Any]:
    """TRIAGE whose system prompt names `version`, so each version renders differently."""
    messages = [
        {**TRIAGE["messages"][0], "content": f"[v{version}] " + TRIAGE["messages"][0]["content"]},
        TRIAGE["messages"][1],
    ]
    return triage(messages=messages)
