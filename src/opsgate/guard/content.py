"""The text inside chat messages: where it is, whose it is, and how to change it safely.

A message's text lives in `content` (a string, or parts with `text`), in an assistant's tool
call arguments, and in nested parts some clients send (tool results with their own `content`).
Binary parts (`image_url`, `input_audio`, `file`) are never scanned: base64 is not prose.

Content is *untrusted* when it came from somewhere other than the caller: tool and function
results, and any message or part the caller marks `"untrusted": true`. That marker is the
gateway's own, so it is removed before the request goes upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opsgate.types import JSONObject

Path = tuple[int | str, ...]
MARK = "untrusted"
MAX_DEPTH = 12
"""Deeper nesting is not walked: no real client sends it, and it must not cost a recursion."""
_TEXT_KEYS = ("text", "content")
_UNTRUSTED_ROLES = frozenset({"tool", "function"})


@dataclass(frozen=True, slots=True)
class Slot:
    """One string in the messages: `messages[index]` then `path` leads to it."""

    index: int
    path: Path
    role: str
    text: str
    untrusted: bool


def is_untrusted_role(role: str) -> bool:
    return role in _UNTRUSTED_ROLES


def has_marks(messages: list[JSONObject]) -> bool:
    """Whether any message or content part carries the `untrusted` marker (cheap check)."""
    for m in messages:
        if not isinstance(m, dict):
            continue
        if MARK in m:
            return True
        content = m.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and MARK in p for p in content):
            return True
    return False


def slots(messages: list[JSONObject]) -> list[Slot]:
    """Every scannable string, in message order (so placeholders number the same each time)."""
    out: list[Slot] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        role = m.get("role") if isinstance(m.get("role"), str) else ""
        marked = bool(m.get(MARK)) or is_untrusted_role(str(role))
        out.extend(_walk(i, ("content",), m.get("content"), str(role), marked))
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            for j, call in enumerate(calls):
                fn = call.get("function") if isinstance(call, dict) else None
                args = fn.get("arguments") if isinstance(fn, dict) else None
                if isinstance(args, str):
                    path: Path = ("tool_calls", j, "function", "arguments")
                    out.append(Slot(i, path, str(role), args, marked))
    return out


def _walk(index: int, path: Path, value: Any, role: str, marked: bool) -> Iterator[Slot]:
    """Strings under `content`/`text` keys, iteratively, to MAX_DEPTH."""
    stack: list[tuple[Path, Any, bool]] = [(path, value, marked)]
    while stack:
        where, node, untrusted = stack.pop()
        if isinstance(node, str):
            yield Slot(index, where, role, node, untrusted)
        elif len(where) > MAX_DEPTH:
            continue
        elif isinstance(node, list):
            for k in range(len(node) - 1, -1, -1):
                stack.append(((*where, k), node[k], untrusted))
        elif isinstance(node, dict):
            inner = untrusted or bool(node.get(MARK))
            for key in reversed(_TEXT_KEYS):
                if key in node:
                    stack.append(((*where, key), node[key], inner))


def unmarked(messages: list[JSONObject]) -> list[JSONObject]:
    """The messages without the gateway's `untrusted` markers (copies only what changes)."""
    out: list[JSONObject] = []
    for m in messages:
        if not isinstance(m, dict):
            out.append(m)
            continue
        clean = {k: v for k, v in m.items() if k != MARK} if MARK in m else m
        content = clean.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and MARK in p for p in content):
            clean = dict(clean)
            clean["content"] = [
                {k: v for k, v in p.items() if k != MARK} if isinstance(p, dict) else p
                for p in content
            ]
        out.append(clean)
    return out


def rewrite(messages: list[JSONObject], changes: dict[tuple[int, Path], str]) -> list[JSONObject]:
    """A copy of `messages` with the strings at the given slots replaced. Only the containers on
    the way to a change are copied (not deep copies: nesting depth costs nothing), so the
    caller's request object stays as it was."""
    out = list(messages)
    fresh: set[int] = set()
    for (index, path), text in changes.items():
        node: Any = _own(out[index], fresh)
        out[index] = node
        for key in path[:-1]:
            child = _own(node[key], fresh)
            node[key] = child
            node = child
        node[path[-1]] = text
    return out


def _own(node: Any, fresh: set[int]) -> Any:
    """`node` itself when this rewrite already copied it, else a shallow copy of it."""
    if id(node) in fresh:
        return node
    twin = dict(node) if isinstance(node, dict) else list(node)
    fresh.add(id(twin))
    return twin


def text_size(messages: list[JSONObject]) -> int:
    """Characters of message content and first-level text parts: a cheap size estimate."""
    total = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                total += len(text) if isinstance(text, str) else 0
    return total


def budget(found: list[Slot], limit: int | None) -> tuple[list[tuple[Slot, str]], bool]:
    """The slots to scan, newest first until `limit` characters (the last one cut short), put
    back in message order; True when some text was left out."""
    if limit is None:
        return [(s, s.text) for s in found], False
    chosen: list[tuple[Slot, str]] = []
    left, skipped = limit, False
    for slot in reversed(found):
        if left <= 0:
            skipped = True
            continue
        if len(slot.text) > left:
            chosen.append((slot, slot.text[:left]))
            skipped, left = True, 0
            continue
        chosen.append((slot, slot.text))
        left -= len(slot.text)
    chosen.reverse()
    return chosen, skipped


def with_system_line(messages: list[JSONObject], line: str) -> list[JSONObject]:
    """A copy of `messages` whose system prompt ends with `line`: added to a leading system
    message, else a system message put in front (some chat templates refuse a second system
    message, so an existing one is reused)."""
    out = list(messages)
    first = out[0] if out else None
    if isinstance(first, dict) and first.get("role") in ("system", "developer"):
        content = first.get("content")
        if isinstance(content, str):
            out[0] = {**first, "content": f"{content}\n\n{line}" if content else line}
            return out
        if isinstance(content, list):
            out[0] = {**first, "content": [*content, {"type": "text", "text": line}]}
            return out
    return [{"role": "system", "content": line}, *out]
