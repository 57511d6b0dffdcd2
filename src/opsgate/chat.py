"""The gateway's own request and response types.

The lingua franca is OpenAI's chat wire format (the API the gateway speaks), wrapped in small
typed objects: an OpenAI-dialect upstream then needs no translation at all, and fields the
gateway does not act on travel through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsgate.types import JSONObject


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, raw: Any) -> Usage | None:
        if not isinstance(raw, dict):
            return None
        details = raw.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0)
            if isinstance(details, dict)
            else 0,
        )

    def to_openai(self) -> JSONObject:
        out: JSONObject = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out


@dataclass(slots=True)
class ChatRequest:
    """A validated chat completion request.

    `params` keeps every other body field exactly as the client sent it, so new OpenAI features
    reach OpenAI-compatible upstreams on day one.
    """

    model: str
    messages: list[JSONObject]
    stream: bool = False
    params: JSONObject = field(default_factory=dict)

    @property
    def max_tokens(self) -> int | None:
        value = self.params.get("max_completion_tokens", self.params.get("max_tokens"))
        return value if isinstance(value, int) else None

    @property
    def include_usage(self) -> bool:
        opts = self.params.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    @property
    def n(self) -> int:
        value = self.params.get("n")
        return value if isinstance(value, int) and value > 0 else 1

    def to_openai(self, model: str) -> JSONObject:
        """The OpenAI wire body for an upstream that calls this model `model`."""
        body: JSONObject = {"model": model, "messages": self.messages, **self.params}
        if self.stream:
            body["stream"] = True
        return body


@dataclass(slots=True)
class ChatResponse:
    """A complete (non-streamed) answer, as an OpenAI `chat.completion` object."""

    body: JSONObject

    @property
    def usage(self) -> Usage | None:
        return Usage.from_openai(self.body.get("usage"))

    @property
    def text(self) -> str:
        """The answer's text (content and tool calls) for token estimates and stored bodies."""
        parts: list[str] = []
        for choice in self.body.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                parts.append(message["content"])
            for call in message.get("tool_calls") or ():
                fn = call.get("function") or {}
                parts.append(f"{fn.get('name', '')}{fn.get('arguments', '')}")
        return "".join(parts)

    @property
    def finish_reasons(self) -> list[str]:
        return [str(c.get("finish_reason")) for c in self.body.get("choices") or ()]


@dataclass(slots=True)
class ChatChunk:
    """One streamed piece, as an OpenAI `chat.completion.chunk` object."""

    body: JSONObject

    @property
    def usage(self) -> Usage | None:
        return Usage.from_openai(self.body.get("usage"))

    @property
    def text(self) -> str:
        """The text this chunk adds (content and tool-call pieces), for metering and bodies."""
        parts: list[str] = []
        for choice in self.body.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                parts.append(content)
            for tool in delta.get("tool_calls") or ():
                fn = tool.get("function") or {}
                parts.append(f"{fn.get('name') or ''}{fn.get('arguments') or ''}")
        return "".join(parts)

    @property
    def is_usage_only(self) -> bool:
        """The trailing chunk OpenAI sends for `include_usage`: usage and no choices."""
        return not self.body.get("choices") and self.body.get("usage") is not None


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    input: str | list[Any]
    params: JSONObject = field(default_factory=dict)

    def to_openai(self, model: str) -> JSONObject:
        return {"model": model, "input": self.input, **self.params}

    @property
    def inputs(self) -> list[Any]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
