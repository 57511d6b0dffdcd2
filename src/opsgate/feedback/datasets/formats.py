"""The export formats, one JSON line each, built from row contents (pure functions).

- `openai-chat`: OpenAI's chat fine-tuning JSONL, `{"messages": [...], "tools": [...]}`; the
  last message is the target answer: the reference (correction) when the row has one, else the
  output. Messages keep only the fields the format takes; `developer` becomes `system`;
  assistant content is a string; user content keeps text and image parts.
- `preference`: `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}` (the
  conversational preference format of TRL's DPO trainer), from a correction against the
  original answer, or from two answers to the same input scored apart.
- `eval`: `{"id", "input": [...], "tools"?, "reference", "metadata", "trace_id"}`; the
  reference is the correction, else the output.

Each builder returns the line and the messages it holds (what redaction rewrites and tokens are
counted over), or None when the row cannot make a line in that format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from opsgate.feedback.datasets.rows import RowContent
from opsgate.types import JSONObject

Format = Literal["openai-chat", "preference", "eval"]
FORMATS: tuple[Format, ...] = get_args(Format)

_KEEP: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls", "weight"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
_USER_PARTS = frozenset({"text", "image_url"})


@dataclass(frozen=True, slots=True)
class Line:
    """One exported line before redaction: its messages sit in `messages` (in order), and
    `assemble` puts (possibly rewritten) messages back into the line."""

    format: Format
    messages: list[JSONObject]
    tools: list[JSONObject] | None
    extra: dict[str, Any]
    split: int = 0
    """preference: how many messages are the prompt (chosen and rejected follow, one each)."""

    def assemble(self, messages: list[JSONObject]) -> dict[str, Any]:
        if self.format == "openai-chat":
            line: dict[str, Any] = {"messages": messages}
        elif self.format == "preference":
            prompt, chosen, rejected = messages[: self.split], messages[-2], messages[-1]
            line = {"prompt": prompt, "chosen": [chosen], "rejected": [rejected]}
        else:
            line = {"id": self.extra["id"], "input": messages[:-1]}
            line["reference"] = reference_of(messages[-1])
        if self.tools:
            line["tools"] = self.tools
        if self.format == "eval":
            line["metadata"] = self.extra["metadata"]
            line["trace_id"] = self.extra["trace_id"]
        return line

    def key(self, messages: list[JSONObject]) -> dict[str, Any]:
        """What makes two lines duplicates: the line without its id, trace id or metadata."""
        line = self.assemble(messages)
        for name in ("id", "trace_id", "metadata"):
            line.pop(name, None)
        return line


def clean(message: JSONObject) -> JSONObject:
    """A message with only the fields the fine-tuning format takes."""
    role = message.get("role")
    role = "system" if role == "developer" else role
    keep = _KEEP.get(str(role), _KEEP["user"])
    out = {k: v for k, v in message.items() if k in keep}
    out["role"] = role
    content = out.get("content")
    if role == "assistant":
        out["content"] = _text(content) if content is not None or "tool_calls" not in out else None
    elif role == "user" and isinstance(content, list):
        out["content"] = [
            p for p in content if isinstance(p, dict) and p.get("type") in _USER_PARTS
        ]
    elif isinstance(content, list):
        out["content"] = _text(content)
    elif content is None:
        out["content"] = ""
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return "" if content is None else str(content)


def reference_of(message: JSONObject) -> Any:
    """The eval format's reference: the answer's text, or the whole message when it calls
    tools."""
    if message.get("tool_calls"):
        return message
    return _text(message.get("content"))


def chat_line(content: RowContent) -> Line | None:
    target = content.target
    if target is None:
        return None
    messages = [clean(m) for m in content.messages] + [clean(target)]
    return Line("openai-chat", messages, content.tools, {})


def eval_line(content: RowContent, row_id: str, trace_id: str | None, metadata: Any) -> Line | None:
    target = content.target
    if target is None:
        return None
    messages = [clean(m) for m in content.messages] + [clean(target)]
    extra = {"id": row_id, "trace_id": trace_id, "metadata": metadata}
    return Line("eval", messages, content.tools, extra)


def preference_line(prompt: RowContent, chosen: JSONObject, rejected: JSONObject) -> Line | None:
    """A pair, unless the two answers say the same."""
    good, bad = clean(chosen), clean(rejected)
    if good == bad:
        return None
    messages = [clean(m) for m in prompt.messages]
    return Line("preference", [*messages, good, bad], prompt.tools, {}, split=len(messages))
