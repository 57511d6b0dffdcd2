"""OpenAI-shaped chat messages in the GenAI conventions' message format (`role` + `parts`).

Used only when content capture is on, for `gen_ai.input.messages` / `gen_ai.output.messages`.
Inline images (data: URLs) are left out: they are large and rarely what a trace reader wants.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Part = dict[str, Any]


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _content_parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[Part] = []
    for item in content if isinstance(content, list) else [content]:
        if not isinstance(item, Mapping):
            parts.append({"type": "text", "content": str(item)})
        elif item.get("type") == "text" or "text" in item:
            parts.append({"type": "text", "content": str(item.get("text", ""))})
        elif item.get("type") == "image_url":
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            url = str(url or "")
            if url.startswith("data:"):
                url = url.split(",", 1)[0] + ",(omitted)"
            parts.append({"type": "uri", "modality": "image", "uri": url})
        else:
            parts.append({"type": str(item.get("type") or "unknown")})
    return parts


def _message(message: Mapping[str, Any]) -> Part:
    role = str(message.get("role") or "user")
    parts = _content_parts(message.get("content"))
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            fn = call.get("function")
            fn = fn if isinstance(fn, Mapping) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": _arguments(fn.get("arguments")),
                }
            )
    if role == "tool":
        text = " ".join(p["content"] for p in parts if p.get("type") == "text")
        parts = [
            {"type": "tool_call_response", "id": message.get("tool_call_id"), "response": text}
        ]
    out: Part = {"role": role, "parts": parts}
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def input_messages(messages: Sequence[Mapping[str, Any]]) -> list[Part]:
    """The prompt, as `gen_ai.input.messages`."""
    return [_message(m) for m in messages]


def output_messages(
    output: str | Sequence[Mapping[str, Any]], finish_reason: str | None
) -> list[Part]:
    """The completion (text, or assistant messages / choices), as `gen_ai.output.messages`."""
    if isinstance(output, str):
        items: list[Mapping[str, Any]] = [{"role": "assistant", "content": output}]
    else:
        items = list(output)
    out: list[Part] = []
    for item in items:
        # An OpenAI choice carries its message and its own finish reason.
        inner = item.get("message")
        message: Mapping[str, Any] = inner if isinstance(inner, Mapping) else item
        converted = _message({"role": "assistant", **message})
        converted["finish_reason"] = item.get("finish_reason") or finish_reason or "stop"
        out.append(converted)
    return out
