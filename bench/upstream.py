"""The fast fake OpenAI upstream: a raw ASGI app on uvicorn (uvloop + httptools).

Every POST answers (after `--delay-ms`, 0 by default) with the same small `chat.completion`
(precomputed bytes), or, when the request says `"stream": true`, the same short SSE stream in
one write. Anything else is a 200 `{"status":"ok"}` so readiness probes work. Run it with
`python -m bench.upstream --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CREATED = 1_700_000_000
USAGE = {"prompt_tokens": 19, "completion_tokens": 9, "total_tokens": 28}
ANSWER = "Hello! How can I help you today?"


def completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": "fake",
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def stream_body() -> bytes:
    """Role chunk, four content chunks, the finish chunk with usage, then `[DONE]`."""

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
        event = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": "fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            event["usage"] = usage
        return b"data: " + orjson.dumps(event) + b"\n\n"

    words = ANSWER.split(" ")
    parts = [" ".join(words[i : i + 2]) + " " for i in range(0, len(words), 2)]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": part}) for part in parts]
    events.append(chunk({}, finish="stop", usage=USAGE))
    return b"".join(events) + b"data: [DONE]\n\n"


def make_app(delay: float = 0.0) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """`delay` seconds pass before a POST is answered: an upstream that takes time, as a real
    model does, so queueing in front of it shows (the head and body still go in one write)."""
    json_body, sse_body = completion_body(), stream_body()
    json_head = _head(b"application/json", len(json_body))
    sse_head = _head(b"text/event-stream", len(sse_body))
    ok_body = b'{"status":"ok"}'
    ok_head = _head(b"application/json", len(ok_body))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is switched off on the command line
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            head, payload = ok_head, ok_body
        elif _wants_stream(body):
            head, payload = sse_head, sse_body
        else:
            head, payload = json_head, json_body
        if delay and scope["method"] == "POST":
            await asyncio.sleep(delay)
        await send(head)
        await send({"type": "http.response.body", "body": payload})

    return app


def _wants_stream(body: bytes) -> bool:
    if b'"stream"' not in body:
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("stream") is True


def _head(content_type: bytes, length: int) -> Message:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(length).encode()),
        ],
    }


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="wait before each answer")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.delay_ms / 1000),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
