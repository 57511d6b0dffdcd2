"""One stored form for an answer, whether it came streamed or whole.

A cached answer is an OpenAI `chat.completion` body. A streamed answer is folded into that form
as it passes (`StreamFold`), and a cached body is replayed either whole or as a short stream of
chunks (`replay_chunks`), so a stream can serve a plain request and the other way round. Chunk
timing is not kept.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import orjson

from opsgate.chat import Usage
from opsgate.types import JSONObject

_HEAD_FIELDS = ("id", "model", "created", "system_fingerprint", "service_tier")


@dataclass(slots=True)
class CachedAnswer:
    body: JSONObject
    """The `chat.completion` body, usage included."""
    cost_micros: int = 0
    """What the answer cost when it was made: the saving each hit reports."""
    created: float = 0.0
    """Epoch seconds when it was stored."""

    @property
    def usage(self) -> Usage | None:
        return Usage.from_openai(self.body.get("usage"))

    def dumps(self) -> bytes:
        return orjson.dumps({"b": self.body, "c": self.cost_micros, "t": self.created})

    @classmethod
    def loads(cls, raw: bytes) -> CachedAnswer:
        data = orjson.loads(raw)
        return cls(body=data["b"], cost_micros=int(data["c"]), created=float(data["t"]))


def _fold_tool_calls(into: list[JSONObject], deltas: list[Any]) -> None:
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", len(into))
        while len(into) <= index:
            into.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        call = into[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        fn = delta.get("function") or {}
        call["function"]["name"] += fn.get("name") or ""
        call["function"]["arguments"] += fn.get("arguments") or ""


class StreamFold:
    """Builds the `chat.completion` a stream amounts to, chunk by chunk."""

    def __init__(self) -> None:
        self.head: JSONObject = {}
        self.choices: dict[int, JSONObject] = {}

    def add(self, chunk: JSONObject) -> None:
        if not self.head:
            self.head = {k: chunk[k] for k in _HEAD_FIELDS if chunk.get(k) is not None}
        for choice in chunk.get("choices") or ():
            self._add_choice(choice)

    def _add_choice(self, choice: JSONObject) -> None:
        index = int(choice.get("index") or 0)
        out = self.choices.setdefault(
            index,
            {"index": index, "message": {"role": "assistant", "content": None}, "logprobs": None},
        )
        message, delta = out["message"], choice.get("delta") or {}
        for name in ("content", "refusal", "reasoning_content"):
            piece = delta.get(name)
            if isinstance(piece, str):
                message[name] = (message.get(name) or "") + piece
        if delta.get("tool_calls"):
            _fold_tool_calls(message.setdefault("tool_calls", []), delta["tool_calls"])
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            into = out["logprobs"] = out["logprobs"] or {}
            for name, items in logprobs.items():
                if isinstance(items, list):
                    into.setdefault(name, []).extend(items)
        if choice.get("finish_reason"):
            out["finish_reason"] = choice["finish_reason"]

    def completion(self, usage: Usage | None) -> JSONObject | None:
        """The whole answer; None unless every choice finished (a cut stream is not cached)."""
        if not self.choices or any("finish_reason" not in c for c in self.choices.values()):
            return None
        body: JSONObject = {**self.head, "object": "chat.completion"}
        body["choices"] = [self.choices[i] for i in sorted(self.choices)]
        if usage is not None:
            body["usage"] = usage.to_openai()
        return body


def replay_body(answer: CachedAnswer, response_id: str) -> JSONObject:
    """A fresh copy of the cached body, with this response's own id and time."""
    body = copy.deepcopy(answer.body)
    body["id"], body["created"] = response_id, int(time.time())
    return body


def _choice_chunks(choice: JSONObject) -> list[JSONObject]:
    message = choice.get("message") or {}
    index = choice.get("index", 0)
    first: JSONObject = {"role": message.get("role") or "assistant", "content": ""}
    deltas = [first]
    for name in ("reasoning_content", "content", "refusal"):
        if isinstance(message.get(name), str) and message[name]:
            deltas.append({name: message[name]})
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        deltas.append({"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]})
    out = [{"index": index, "delta": d, "finish_reason": None} for d in deltas]
    if choice.get("logprobs") is not None:
        out[-1]["logprobs"] = choice["logprobs"]
    out.append({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")})
    return out


def replay_chunks(
    answer: CachedAnswer, response_id: str, *, include_usage: bool
) -> list[JSONObject]:
    """The cached answer as `chat.completion.chunk` bodies (role, content, tool calls, finish,
    and the usage chunk when the client asked for it)."""
    body = answer.body
    head: JSONObject = {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }
    if body.get("system_fingerprint"):
        head["system_fingerprint"] = body["system_fingerprint"]
    chunks = [
        {**head, "choices": [piece]}
        for choice in body.get("choices") or ()
        for piece in _choice_chunks(choice)
    ]
    if include_usage and body.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": copy.deepcopy(body["usage"])})
    return chunks
