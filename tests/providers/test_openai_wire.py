"""Contract tests for the OpenAI dialect: recorded-style wire transcripts in, our types out.

Each transcript in `golden/` follows OpenAI's real wire format; the expected file holds what
the gateway must make of it, so a translation change shows up as a diff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from opsgate.chat import ChatChunk
from opsgate.providers.errors import (
    StreamBrokenError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from opsgate.providers.openai import (
    chunk_from_wire,
    error_message,
    raise_for_status,
    response_from_wire,
    retry_after_seconds,
)
from opsgate.providers.sse import read_events
from opsgate.providers.transport import HTTPResult

if TYPE_CHECKING:
    from conftest import WireKit

GOLDEN = Path(__file__).parent / "golden"
STREAMS = sorted(p.stem for p in GOLDEN.glob("openai_stream_*.sse"))
ANSWERS = sorted(p.stem for p in GOLDEN.glob("openai_response_*.json") if ".expected" not in p.name)


async def replay(wire: WireKit, raw: bytes) -> list[ChatChunk]:
    """The OpenAI provider's stream loop, minus the network."""
    chunks = []
    async for event in read_events(wire.lines(raw)):
        if event.data.strip() == "[DONE]":
            break
        chunks.append(chunk_from_wire(event.data))
    return chunks


def test_golden_files_are_present() -> None:
    assert STREAMS == ["openai_stream_text", "openai_stream_tool_call"]
    assert ANSWERS == ["openai_response_text"]


@pytest.mark.parametrize("name", ANSWERS)
def test_answer_transcript(wire: WireKit, name: str) -> None:
    result = HTTPResult(200, {"content-type": "application/json"}, wire.read(f"{name}.json"))
    resp = response_from_wire(result)
    usage = resp.usage
    assert usage is not None
    wire.check(
        name,
        {
            "body": resp.body,
            "usage": usage.to_openai(),
            "finish_reasons": resp.finish_reasons,
        },
    )


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_transcript(wire: WireKit, name: str) -> None:
    chunks = await replay(wire, wire.read(f"{name}.sse"))
    wire.check(name, {"chunks": [c.body for c in chunks], "assembled": wire.assemble(chunks)})


@pytest.mark.parametrize("name", STREAMS)
async def test_stream_transcript_with_crlf_line_endings(wire: WireKit, name: str) -> None:
    raw = wire.read(f"{name}.sse")
    crlf = await replay(wire, raw.replace(b"\n", b"\r\n"))
    assert [c.body for c in crlf] == [c.body for c in await replay(wire, raw)]


async def test_tool_call_arguments_join_into_json(wire: WireKit) -> None:
    chunks = await replay(wire, wire.read("openai_stream_tool_call.sse"))
    (call,) = wire.assemble(chunks)["tool_calls"]
    assert orjson.loads(call["arguments"]) == {"location": "Paris, France"}


async def test_usage_chunk_is_usage_only_and_last(wire: WireKit) -> None:
    chunks = await replay(wire, wire.read("openai_stream_text.sse"))
    assert [c.is_usage_only for c in chunks] == [False] * (len(chunks) - 1) + [True]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (19, 10, 29)


async def test_sse_comments_and_multiline_data() -> None:
    async def lines() -> AsyncIterator[bytes]:
        for line in (b": keep-alive", b"", b'data: {"a":', b"data: 1}", b"", b"data: [DONE]"):
            yield line

    events = [e async for e in read_events(lines())]
    assert [e.data for e in events] == ['{"a":\n1}', "[DONE]"]


def test_in_band_error_chunk_breaks_the_stream() -> None:
    data = '{"error":{"message":"The server had an error","type":"server_error"}}'
    with pytest.raises(StreamBrokenError, match="The server had an error"):
        chunk_from_wire(data)


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"text"'])
def test_malformed_chunk_is_a_protocol_error(data: str) -> None:
    with pytest.raises(UpstreamProtocolError):
        chunk_from_wire(data)


def test_answer_without_choices_is_a_protocol_error() -> None:
    with pytest.raises(UpstreamProtocolError):
        response_from_wire(HTTPResult(200, {}, b'{"id": "x", "object": "chat.completion"}'))


def test_error_status_maps_to_upstream_status_error() -> None:
    body = (
        b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'
    )
    with pytest.raises(UpstreamStatusError) as info:
        raise_for_status(429, {"retry-after-ms": "1500"}, body)
    err = info.value
    assert (err.status, err.retry_after, err.retryable) == (429, 1.5, True)
    assert err.headers["retry-after"] == "2"
    assert "Rate limit reached" in err.message


def test_client_error_status_is_passed_on_and_not_retried() -> None:
    body = b'{"error":{"message":"Invalid \'messages\'","type":"invalid_request_error"}}'
    with pytest.raises(UpstreamStatusError) as info:
        response_from_wire(HTTPResult(400, {}, body))
    assert (info.value.status, info.value.retryable) == (400, False)


def test_anthropic_error_body_reads_through_error_message() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert error_message(body, 529) == "upstream returned 529: Overloaded"


def test_non_json_error_body_is_quoted_briefly() -> None:
    assert error_message(b"<html>Bad Gateway</html>", 502).endswith("<html>Bad Gateway</html>")
    assert error_message(b"", 503) == "upstream returned 503"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, None), ({"retry-after": "3"}, 3.0), ({"retry-after": "soon"}, None)],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected
