"""Rewriting a streamed answer's text as it flows, without buffering the stream.

A `TextFilter` gets each text piece and returns what may be shown now, holding back a short
tail when a match could still be completing (a placeholder, a canary, a phone number cut
between two chunks). Each choice's content and each of its tool calls' arguments has its own
filter; what a filter still holds is released with the choice's `finish_reason`, or in one
extra chunk when the stream ends without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

from opsgate.chat import ChatChunk, ChatResponse
from opsgate.types import JSONObject


class TextFilter(Protocol):
    def feed(self, piece: str) -> str: ...

    def flush(self) -> str: ...


FilterFactory = Callable[[], TextFilter]
_Key = tuple[int, int | None]
"""(choice index, tool call index or None for content)."""


def filter_response(response: ChatResponse, make: FilterFactory) -> ChatResponse:
    """A whole answer through fresh filters (content and tool-call arguments, per choice)."""
    for choice in response.body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            message["content"] = _whole(make(), message["content"])
        for call in message.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = _whole(make(), fn["arguments"])
    return response


def _whole(f: TextFilter, text: str) -> str:
    return f.feed(text) + f.flush()


async def filter_stream(
    chunks: AsyncIterator[ChatChunk], make: FilterFactory, *, offload: bool = False
) -> AsyncGenerator[ChatChunk, None]:
    """Each chunk through the filters of its choices; with `offload` (a slow detector such as
    Presidio) every chunk is filtered in a worker thread, one at a time, in order."""
    filters: dict[_Key, TextFilter] = {}
    last: JSONObject = {}
    try:
        async for chunk in chunks:
            body = chunk.body
            last = body
            choices = body.get("choices")
            if not choices:
                extra = _leftovers(filters, body)
                if extra is not None:
                    yield extra
                yield chunk
                continue
            if offload:
                await asyncio.to_thread(_feed_choices, choices, filters, make)
            else:
                _feed_choices(choices, filters, make)
            yield chunk
        extra = _leftovers(filters, last)
        if extra is not None:
            yield extra
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _feed_choices(choices: Any, filters: dict[_Key, TextFilter], make: FilterFactory) -> None:
    for choice in choices:
        if isinstance(choice, dict):
            _feed_choice(choice, filters, make)


def _feed_choice(choice: JSONObject, filters: dict[_Key, TextFilter], make: FilterFactory) -> None:
    index = choice.get("index", 0)
    index = index if isinstance(index, int) else 0
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        delta = choice["delta"] = {}
    content = delta.get("content")
    if isinstance(content, str) and content:
        delta["content"] = _filter(filters, (index, None), make).feed(content)
    for call in delta.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if isinstance(args, str) and args and isinstance(fn, dict):
            key = (index, call.get("index", 0) if isinstance(call.get("index"), int) else 0)
            fn["arguments"] = _filter(filters, key, make).feed(args)
    if choice.get("finish_reason"):
        _release(index, delta, filters)


def _filter(filters: dict[_Key, TextFilter], key: _Key, make: FilterFactory) -> TextFilter:
    f = filters.get(key)
    if f is None:
        f = filters[key] = make()
    return f


def _release(index: int, delta: JSONObject, filters: dict[_Key, TextFilter]) -> None:
    """Put what the choice's filters hold into `delta` (its last chunk) and drop them."""
    for key in [k for k in filters if k[0] == index]:
        rest = filters.pop(key).flush()
        if not rest:
            continue
        if key[1] is None:
            delta["content"] = (delta.get("content") or "") + rest
        else:
            calls = delta.setdefault("tool_calls", [])
            calls.append({"index": key[1], "function": {"arguments": rest}})


def _leftovers(filters: dict[_Key, TextFilter], like: JSONObject) -> ChatChunk | None:
    """One chunk with everything still held, or None when nothing is."""
    choices: dict[int, dict[str, Any]] = {}
    for index in sorted({k[0] for k in filters}):
        delta: JSONObject = {}
        _release(index, delta, filters)
        if delta:
            choices[index] = {"index": index, "delta": delta, "finish_reason": None}
    if not choices:
        return None
    body: JSONObject = {
        k: like[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in like
    }
    body["choices"] = list(choices.values())
    return ChatChunk(body)
