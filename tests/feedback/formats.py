"""Checkers for the three export formats, written from their published descriptions; each
returns the problems it finds in one parsed line ([] when it is valid).

- OpenAI chat fine-tuning JSONL (platform.openai.com/docs/guides/fine-tuning, "Preparing your
  dataset", and the chat-format validation recipe of the OpenAI cookbook): a `messages` list of
  `system` / `user` / `assistant` / `tool` messages (`function` for the legacy form), content a
  string or content parts (text; image_url in user messages), assistant `tool_calls` with JSON
  arguments, `tool` messages answering a call by `tool_call_id`, an optional `weight` of 0 or 1
  on assistant messages, optional `tools` (function definitions) and `parallel_tool_calls`, and
  at least one assistant message to learn from.
- Preference pairs in TRL's conversational form (huggingface.co/docs/trl, "Dataset formats":
  preference): `prompt` a list of messages, `chosen` and `rejected` one assistant message each.
- Eval sets (ours, docs/feedback.md): `id`, `input` messages, `reference`, `metadata`,
  `trace_id`, optional `tools`.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CHAT_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
_MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "weight", "function_call"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}


def _content(message: dict[str, Any], where: str) -> list[str]:
    role, content = message["role"], message.get("content")
    if role == "assistant" and content is None:
        return (
            []
            if message.get("tool_calls") or message.get("function_call")
            else [f"{where}: assistant message without content or tool calls"]
        )
    if isinstance(content, str):
        return [] if content or role != "assistant" else [f"{where}: empty assistant content"]
    if not isinstance(content, list) or not content:
        return [f"{where}: content must be a string or a non-empty list of parts"]
    problems = []
    allowed = {"text", "image_url"} if role == "user" else {"text"}
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            problems.append(f"{where}.content[{n}]: part type {kind!r} not allowed for {role}")
        elif kind == "text" and not isinstance(part.get("text"), str):
            problems.append(f"{where}.content[{n}]: text part without text")
        elif kind == "image_url" and not isinstance((part.get("image_url") or {}).get("url"), str):
            problems.append(f"{where}.content[{n}]: image part without url")
    return problems


def _tool_calls(calls: Any, where: str) -> tuple[list[str], set[str]]:
    if not isinstance(calls, list) or not calls:
        return [f"{where}.tool_calls: must be a non-empty list"], set()
    problems, ids = [], set()
    for n, call in enumerate(calls):
        at = f"{where}.tool_calls[{n}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(fn, dict):
            problems.append(f"{at}: must be a function call")
            continue
        if not isinstance(call.get("id"), str):
            problems.append(f"{at}: missing id")
        else:
            ids.add(call["id"])
        if not isinstance(fn.get("name"), str) or not _FUNCTION_NAME.match(fn["name"]):
            problems.append(f"{at}: bad function name")
        try:
            json.loads(fn.get("arguments"))
        except (TypeError, ValueError):
            problems.append(f"{at}: arguments must be a JSON string")
    return problems, ids


def _tools(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        return ["tools: must be a list"]
    problems = []
    for n, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            problems.append(f"tools[{n}]: must be a function tool")
        elif not isinstance(fn.get("name"), str) or not _FUNCTION_NAME.match(fn["name"]):
            problems.append(f"tools[{n}]: bad function name")
        elif "parameters" in fn and not isinstance(fn["parameters"], dict):
            problems.append(f"tools[{n}]: parameters must be a JSON schema object")
    return problems


def _messages(messages: Any, where: str) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"{where}: must be a non-empty list"]
    problems: list[str] = []
    open_calls: set[str] = set()
    for n, message in enumerate(messages):
        at = f"{where}[{n}]"
        if not isinstance(message, dict) or message.get("role") not in _MESSAGE_KEYS:
            problems.append(f"{at}: unrecognised role")
            continue
        role = message["role"]
        extra = set(message) - _MESSAGE_KEYS[role]
        if extra:
            problems.append(f"{at}: keys {sorted(extra)} not allowed for {role}")
        calls_only = role == "assistant" and ("tool_calls" in message or "function_call" in message)
        if "content" not in message and not calls_only:
            problems.append(f"{at}: missing content")
        elif "content" in message:
            problems.extend(_content(message, at))
        if "weight" in message and message["weight"] not in (0, 1):
            problems.append(f"{at}: weight must be 0 or 1")
        if "tool_calls" in message:
            found, ids = _tool_calls(message["tool_calls"], at)
            problems.extend(found)
            open_calls |= ids
        if role == "tool" and message.get("tool_call_id") not in open_calls:
            problems.append(f"{at}: tool message answers no earlier tool call")
    return problems


def check_openai_chat(line: Any) -> list[str]:
    if not isinstance(line, dict):
        return ["line: must be a JSON object"]
    problems = [f"line: unknown key {k!r}" for k in sorted(set(line) - _CHAT_KEYS)]
    if "messages" not in line:
        return [*problems, "line: missing messages"]
    problems.extend(_messages(line["messages"], "messages"))
    roles = [m.get("role") for m in line["messages"] if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append("messages: no assistant message to learn from")
    if "tools" in line:
        problems.extend(_tools(line["tools"]))
    if "parallel_tool_calls" in line and not isinstance(line["parallel_tool_calls"], bool):
        problems.append("parallel_tool_calls: must be a boolean")
    return problems


def _one_assistant(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return [f"{where}: must hold exactly one message"]
    if value[0].get("role") != "assistant":
        return [f"{where}: must be an assistant message"]
    return _messages(value, where)


def check_preference(line: Any) -> list[str]:
    if not isinstance(line, dict):
        return ["line: must be a JSON object"]
    problems = [
        f"line: unknown key {k!r}"
        for k in sorted(set(line) - {"prompt", "chosen", "rejected", "tools"})
    ]
    for key in ("prompt", "chosen", "rejected"):
        if key not in line:
            problems.append(f"line: missing {key}")
    if problems:
        return problems
    problems.extend(_messages(line["prompt"], "prompt"))
    problems.extend(_one_assistant(line["chosen"], "chosen"))
    problems.extend(_one_assistant(line["rejected"], "rejected"))
    if line["chosen"] == line["rejected"]:
        problems.append("line: chosen and rejected are the same")
    if "tools" in line:
        problems.extend(_tools(line["tools"]))
    return problems


def check_eval(line: Any) -> list[str]:
    if not isinstance(line, dict):
        return ["line: must be a JSON object"]
    keys = {"id", "input", "reference", "metadata", "trace_id", "tools"}
    problems = [f"line: unknown key {k!r}" for k in sorted(set(line) - keys)]
    for key in ("id", "input", "reference"):
        if key not in line:
            problems.append(f"line: missing {key}")
    if problems:
        return problems
    problems.extend(_messages(line["input"], "input"))
    reference = line["reference"]
    if isinstance(reference, dict):
        problems.extend(_one_assistant([reference], "reference"))
    elif not isinstance(reference, str) or not reference:
        problems.append("reference: must be the answer's text (or a message with tool calls)")
    if not isinstance(line.get("metadata", {}), dict):
        problems.append("metadata: must be an object")
    return problems


CHECKERS = {"openai-chat": check_openai_chat, "preference": check_preference, "eval": check_eval}


def parse_jsonl(raw: bytes, fmt: str) -> list[dict[str, Any]]:
    """Every line parsed and checked against `fmt`; fails the test with the first problems."""
    lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    for n, line in enumerate(lines):
        problems = CHECKERS[fmt](line)
        assert not problems, f"{fmt} line {n + 1}: {problems}\n{line}"
    return lines
