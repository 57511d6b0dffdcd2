"""Translation between the gateway's OpenAI-shaped types and Anthropic's Messages API.

Pure functions and one small state machine, so every mapping can be checked against recorded
transcripts without a network. Requests go one way (`to_wire`), answers the other
(`from_wire`, `StreamTranslator`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from opsgate.chat import ChatRequest, ChatResponse, Usage
from opsgate.errors import BadRequestError
from opsgate.providers.errors import UpstreamProtocolError
from opsgate.types import JSONObject

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
"""Anthropic `stop_reason` to OpenAI `finish_reason`; anything unknown reads as `stop`."""

_SYSTEM_ROLES = frozenset({"system", "developer"})
_SAMPLING = ("temperature", "top_p", "top_k")

Content = str | list[JSONObject]


def _bad(message: str, param: str = "messages") -> BadRequestError:
    return BadRequestError(message, param=param, code="unsupported_for_anthropic")


# -- request: OpenAI chat body -> Anthropic Messages body ------------------------------------


def to_wire(req: ChatRequest, model: str, default_max_tokens: int = 4096) -> JSONObject:
    """The Messages API body for `req`, or a BadRequestError for what Anthropic cannot do.

    Fields Anthropic would reject as unknown are left out rather than passed through.
    """
    if req.n > 1:
        raise _bad("Anthropic models return a single choice; `n` must be 1", param="n")
    system, messages = split_messages(req.messages)
    body: JSONObject = {
        "model": model,
        "max_tokens": req.max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system is not None:
        body["system"] = system
    params = req.params
    body.update({k: params[k] for k in _SAMPLING if params.get(k) is not None})
    stop = stop_sequences(params.get("stop"))
    if stop:
        body["stop_sequences"] = stop
    if isinstance(params.get("user"), str) and params["user"]:
        body["metadata"] = {"user_id": params["user"]}
    body.update(tools_to_wire(params))
    if req.stream:
        body["stream"] = True
    return body


def stop_sequences(stop: Any) -> list[str]:
    """OpenAI `stop` as a list; whitespace-only sequences are dropped (Anthropic rejects them)."""
    values = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    return [s for s in values if isinstance(s, str) and s.strip()]


def split_messages(messages: list[JSONObject]) -> tuple[Content | None, list[JSONObject]]:
    """System text apart; the rest as strictly alternating user/assistant turns.

    Anthropic rejects two turns in a row from one role, so neighbours are merged; tool results
    become user turns, which also merges parallel tool results into one message. The input is
    not changed: a fallback to another dialect still sees what the client sent.
    """
    system: list[JSONObject] = []
    out: list[JSONObject] = []
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role in _SYSTEM_ROLES:
            system.extend(as_blocks(content_to_wire(msg.get("content"), f"messages[{i}]")))
            continue
        wire_role, content = message_to_wire(msg, i)
        if not content:
            continue
        if out and out[-1]["role"] == wire_role:
            merged = as_blocks(out[-1]["content"]) + as_blocks(content)
            # tool results must open a user turn; a stable sort keeps the rest in order
            out[-1]["content"] = sorted(merged, key=lambda b: b.get("type") != "tool_result")
        else:
            out.append({"role": wire_role, "content": content})
    return _system_value(system), out


def _system_value(blocks: list[JSONObject]) -> Content | None:
    """One string when plain text; the blocks kept when one carries `cache_control`."""
    if not blocks:
        return None
    if any(set(b) - {"type", "text"} for b in blocks):
        return blocks
    return "\n\n".join(str(b["text"]) for b in blocks)


def message_to_wire(msg: JSONObject, i: int) -> tuple[str, Content]:
    role, where = msg.get("role"), f"messages[{i}]"
    if role == "user":
        return "user", content_to_wire(msg.get("content"), where)
    if role == "assistant":
        return "assistant", _assistant_to_wire(msg, where)
    if role == "tool":
        return "user", [_tool_result(msg, where)]
    raise _bad(f"{where}: role {role!r} is not supported by the Anthropic dialect")


def as_blocks(content: Content) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def content_to_wire(content: Any, where: str) -> Content:
    """A string stays a string; content parts become Anthropic blocks (empty text dropped)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of content parts")
    blocks = [_part_to_wire(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    return [b for b in blocks if b is not None]


def _part_to_wire(part: Any, where: str) -> JSONObject | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("text", "refusal"):
        text = part.get(kind)
        block: JSONObject | None = {"type": "text", "text": text} if text else None
    elif kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        block = {"type": "image", "source": _source(url, where)}
    elif kind == "file":
        block = _document(part.get("file"), where)
    else:
        raise _bad(f"{where}: content part type {kind!r} is not supported by Anthropic")
    if block is not None and "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _source(url: Any, where: str) -> JSONObject:
    """`data:` URLs become inline base64, anything else a URL Anthropic fetches itself."""
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}: a URL is required")
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise _bad(f"{where}: data URLs must look like data:<media type>;base64,<data>")
    return {"type": "base64", "media_type": media_type, "data": data}


def _document(file: Any, where: str) -> JSONObject:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise _bad(f"{where}: only inline files (file_data) are supported by Anthropic")
    return {"type": "document", "source": _source(data, where)}


def _assistant_to_wire(msg: JSONObject, where: str) -> Content:
    content = content_to_wire(msg.get("content"), where)
    calls = msg.get("tool_calls")
    if not calls:
        return content
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be a list")
    return as_blocks(content) + [
        _tool_use(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(calls)
    ]


def _tool_use(call: Any, where: str) -> JSONObject:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not call.get("id") or not fn.get("name"):
        raise _bad(f"{where}: a tool call needs an id and a function name")
    args = fn.get("arguments") or "{}"
    try:
        args = args if isinstance(args, dict) else orjson.loads(args)
    except orjson.JSONDecodeError:
        raise _bad(f"{where}.function.arguments is not valid JSON") from None
    if not isinstance(args, dict):
        raise _bad(f"{where}.function.arguments must be a JSON object for Anthropic")
    return {"type": "tool_use", "id": call["id"], "name": fn["name"], "input": args}


def _tool_result(msg: JSONObject, where: str) -> JSONObject:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(f"{where}: a tool message needs tool_call_id")
    block: JSONObject = {"type": "tool_result", "tool_use_id": call_id}
    content = content_to_wire(msg.get("content"), where)
    if content:
        block["content"] = content
    return block


def tools_to_wire(params: JSONObject) -> JSONObject:
    """`tools` and `tool_choice` (with `parallel_tool_calls`), sent only when tools are."""
    tools = params.get("tools")
    if not isinstance(tools, list) or not tools:
        return {}
    out: JSONObject = {"tools": [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]}
    choice = _tool_choice(params.get("tool_choice"))
    if params.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    return out


def _tool(tool: Any, where: str) -> JSONObject:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(fn, dict) or tool.get("type") != "function" or not fn.get("name"):
        raise _bad(f"{where}: only function tools with a name are supported", param="tools")
    out: JSONObject = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice(choice: Any) -> JSONObject | None:
    if choice is None:
        return None
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(choice, str) and choice in simple:
        return {"type": simple[choice]}
    fn = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return {"type": "tool", "name": fn["name"]}
    raise _bad(f"tool_choice {choice!r} is not supported", param="tool_choice")


# -- answers: Anthropic message -> OpenAI chat.completion ------------------------------------


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_from_wire(raw: Any) -> Usage:
    """Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI counts them in."""
    raw = raw if isinstance(raw, dict) else {}
    cached = int(raw.get("cache_read_input_tokens") or 0)
    written = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + cached + written,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=cached,
    )


def _tool_call(block: JSONObject) -> JSONObject:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {
            "name": block.get("name"),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def from_wire(body: JSONObject, *, created: int | None = None) -> ChatResponse:
    """A Messages API answer as an OpenAI `chat.completion` (thinking blocks are left out)."""
    content = body.get("content")
    if body.get("type") != "message" or not isinstance(content, list):
        raise UpstreamProtocolError("Anthropic answer is not a message with a content list")
    blocks = [b for b in content if isinstance(b, dict)]
    texts = [str(b.get("text") or "") for b in blocks if b.get("type") == "text"]
    calls = [_tool_call(b) for b in blocks if b.get("type") == "tool_use"]
    message: JSONObject = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    reason = finish_reason(body.get("stop_reason"))
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
    head = {"id": body.get("id"), "object": "chat.completion"}
    return ChatResponse(
        {
            **head,
            "created": created if created is not None else int(time.time()),
            "model": body.get("model"),
            "choices": [choice],
            "usage": usage_from_wire(body.get("usage")).to_openai(),
        }
    )
