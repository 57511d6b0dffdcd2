"""One dataset row's content: the input messages (+ tools), the output the model gave, and the
reference (a reviewer's or user's correction), sealed at rest as one JSON body.

The content is sealed with the traces' body keys (store/crypto.py) under the row's own id, so a
body copied onto another row does not open. `input_hash` names the input (messages and tools,
canonical JSON) so exports can find two answers to the same input without opening bodies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from opsgate.access.errors import ConflictError
from opsgate.errors import BadRequestError
from opsgate.store.crypto import BodyCipher, BodyField, open_body
from opsgate.types import JSONObject

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_FIELD: BodyField = "request_body"  # the envelope's field name: one body per row


@dataclass(frozen=True, slots=True)
class RowContent:
    messages: list[JSONObject]
    """The input: the conversation up to the answer."""
    tools: list[JSONObject] | None = None
    output: JSONObject | None = None
    """The answer the model gave, as an assistant message."""
    reference: JSONObject | None = None
    """The better answer (a correction), as an assistant message."""

    def dumps(self) -> bytes:
        data: dict[str, Any] = {"messages": self.messages}
        if self.tools:
            data["tools"] = self.tools
        data["output"] = self.output
        data["reference"] = self.reference
        return orjson.dumps(data)

    @classmethod
    def loads(cls, raw: bytes) -> RowContent:
        data = orjson.loads(raw)
        return cls(data["messages"], data.get("tools"), data.get("output"), data.get("reference"))

    def input_hash(self) -> str:
        return input_hash(self.messages, self.tools)

    @property
    def target(self) -> JSONObject | None:
        """What a model should answer: the reference when there is one, else the output."""
        return self.reference if self.reference is not None else self.output


def input_hash(messages: Sequence[Any], tools: Sequence[Any] | None) -> str:
    canonical = orjson.dumps(
        {"messages": list(messages), "tools": list(tools or ())}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def seal_id(row_id: str) -> str:
    """The id a row's body is sealed under (bound into the AES-GCM additional data)."""
    return f"dataset-row:{row_id}"


def seal(cipher: BodyCipher | None, row_id: str, content: RowContent) -> bytes:
    """The sealed body; 409 when no encryption key is configured (rows are never stored in
    plain text, like trace bodies)."""
    if cipher is None:
        raise ConflictError(
            "Dataset rows are encrypted at rest and no encryption key is configured: set "
            "OPSGATE_ENCRYPTION_KEYS (or a key file), or store trace bodies "
            "(traces.store_bodies), which creates one beside a SQLite database.",
            code="encryption_unavailable",
        )
    return cipher.seal(content.dumps(), seal_id(row_id), _FIELD)


def unseal(cipher: BodyCipher | None, row_id: str, body: bytes) -> RowContent:
    """The content of a stored row; `DecryptionError` when its key is not configured."""
    return RowContent.loads(open_body(cipher, bytes(body), seal_id(row_id), _FIELD))


def from_bodies(request: bytes, response: bytes | None) -> RowContent | None:
    """A trace's opened bodies as content (no reference); None when it is not a chat call."""
    body = orjson.loads(request)
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return None  # an embeddings trace
    tools = body.get("tools") if isinstance(body.get("tools"), list) else None
    output = assistant(response.decode("utf-8", "replace")) if response is not None else None
    return RowContent(messages, tools, output)


def assistant(content: Any) -> JSONObject:
    """An assistant message from a plain answer, or the message itself when it is one."""
    if isinstance(content, Mapping):
        message = dict(content)
        message["role"] = "assistant"
        return message
    return {"role": "assistant", "content": content}


# --- checking content that arrives from outside (JSONL uploads, inline rows) ----------------


def check_messages(messages: Any, where: str) -> list[JSONObject]:
    """Chat messages as the chat API takes them; 400 naming the first bad field."""
    if not isinstance(messages, list) or not messages:
        raise _bad(where, "must be a non-empty list of chat messages")
    for i, message in enumerate(messages):
        at = f"{where}[{i}]"
        if not isinstance(message, dict):
            raise _bad(at, "must be an object with a role")
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{at}.role", f"must be one of {', '.join(sorted(ROLES))}")
        check_content(message.get("content"), f"{at}.content", optional=role == "assistant")
        calls = message.get("tool_calls")
        if calls is not None and (role != "assistant" or not isinstance(calls, list)):
            raise _bad(f"{at}.tool_calls", "is a list, on assistant messages only")
    return messages


def check_content(content: Any, where: str, *, optional: bool = False) -> None:
    if content is None and optional:
        return
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in content
    ):
        return
    raise _bad(where, "must be a string or a list of content parts with a type")


def check_tools(tools: Any, where: str) -> list[JSONObject] | None:
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise _bad(where, "must be a list of tool objects")
    for i, tool in enumerate(tools):
        fn = tool.get("function")
        if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            raise _bad(f"{where}[{i}]", 'must be {"type": "function", "function": {"name": ...}}')
    return tools


def check_answer(value: Any, where: str) -> JSONObject | None:
    """An output or reference: a string, content parts, or an assistant message."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("role", "assistant") != "assistant":
            raise _bad(f"{where}.role", "must be assistant")
        check_content(value.get("content"), f"{where}.content", optional="tool_calls" in value)
        return assistant(value)
    check_content(value, where)
    return assistant(value)


def _bad(where: str, message: str) -> BadRequestError:
    return BadRequestError(f"{where} {message}", code="invalid_row", param=where)
