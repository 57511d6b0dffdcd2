"""Anthropic stream events to OpenAI `chat.completion.chunk`s: one small state machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from opsgate.chat import ChatChunk, Usage
from opsgate.providers.anthropic_wire import finish_reason, usage_from_wire
from opsgate.providers.errors import StreamBrokenError, UpstreamProtocolError, UpstreamStatusError
from opsgate.providers.sse import SSEvent
from opsgate.types import JSONObject


def event_data(event: SSEvent) -> JSONObject:
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(
            f"Anthropic stream sent a {event.event!r} event that is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise UpstreamProtocolError(
            f"Anthropic stream sent a {event.event!r} event that is not an object"
        )
    return data


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunks, one event at a time.

    State is small: the message id and model, the usage so far, and which content block is
    which OpenAI tool call (OpenAI numbers tool calls, Anthropic numbers all blocks).
    """

    def __init__(self, *, model: str = "", created: int | None = None) -> None:
        self.id = ""
        self.model = model
        self.created = created if created is not None else int(time.time())
        self.done = False
        self._usage: JSONObject = {}
        self._tools: dict[int, int] = {}
        self._sent_content = False
        self._handlers: dict[str, Callable[[JSONObject], list[ChatChunk]]] = {
            "message_start": self._message_start,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def feed(self, event: SSEvent) -> list[ChatChunk]:
        """Chunks for one event; `ping`, block stops and unknown events yield none."""
        data = event_data(event)
        handler = self._handlers.get(str(data.get("type") or event.event))
        return handler(data) if handler is not None else []

    def finish(self) -> None:
        """Call at end of input: a stream without `message_stop` was cut off."""
        if not self.done:
            raise StreamBrokenError("Anthropic stream ended before message_stop")

    @property
    def usage(self) -> Usage:
        return usage_from_wire(self._usage)

    def _envelope(self, choices: list[JSONObject], **extra: Any) -> ChatChunk:
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created}
        return ChatChunk({**head, "model": self.model, "choices": choices, **extra})

    def _chunk(self, delta: JSONObject, finish: str | None = None) -> ChatChunk:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._envelope([choice])

    def _content(self, delta: JSONObject) -> list[ChatChunk]:
        self._sent_content = True
        return [self._chunk(delta)]

    def _message_start(self, data: JSONObject) -> list[ChatChunk]:
        msg = data.get("message")
        if not isinstance(msg, dict):
            raise UpstreamProtocolError("Anthropic message_start event has no message")
        self.id = str(msg.get("id") or self.id)
        self.model = str(msg.get("model") or self.model)
        self._add_usage(msg.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: JSONObject) -> list[ChatChunk]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            raise UpstreamProtocolError("Anthropic content_block_start event has no block")
        if block.get("type") == "text" and block.get("text"):
            return self._content({"content": block["text"]})
        if block.get("type") != "tool_use":
            return []
        index = self._tools.setdefault(int(data.get("index") or 0), len(self._tools))
        args = orjson.dumps(block["input"]).decode() if block.get("input") else ""
        call = {
            "index": index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": args},
        }
        return self._content({"tool_calls": [call]})

    def _block_delta(self, data: JSONObject) -> list[ChatChunk]:
        delta = data.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if kind == "text_delta" and delta and delta.get("text"):
            return self._content({"content": delta["text"]})
        if kind != "input_json_delta" or not delta or not delta.get("partial_json"):
            return []
        index = self._tools.get(int(data.get("index") or 0))
        if index is None:
            raise UpstreamProtocolError("Anthropic stream sent tool input for an unknown block")
        call = {"index": index, "function": {"arguments": delta["partial_json"]}}
        return self._content({"tool_calls": [call]})

    def _message_delta(self, data: JSONObject) -> list[ChatChunk]:
        self._add_usage(data.get("usage"))
        delta = data.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        return [self._chunk({}, finish_reason(stop))] if stop else []

    def _message_stop(self, data: JSONObject) -> list[ChatChunk]:
        self.done = True
        return [self._envelope([], usage=self.usage.to_openai())]

    def _error(self, data: JSONObject) -> list[ChatChunk]:
        err = data.get("error")
        err = err if isinstance(err, dict) else {}
        kind, message = err.get("type") or "error", err.get("message") or "no message"
        if kind == "overloaded_error" and not self._sent_content:
            raise UpstreamStatusError(529, f"Anthropic is overloaded: {message}")
        raise StreamBrokenError(f"Anthropic stream reported {kind}: {message}")

    def _add_usage(self, raw: Any) -> None:
        """Usage figures are cumulative; a later event overrides the earlier count."""
        if isinstance(raw, dict):
            self._usage.update({k: v for k, v in raw.items() if v is not None})
