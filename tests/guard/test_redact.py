"""Redaction and restore: typed placeholders, consistent per request, restored whole or streamed
with placeholders cut anywhere between chunks; message content walked without changing the
caller's objects."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsgate.chat import ChatChunk, ChatResponse
from opsgate.guard.content import rewrite, slots, unmarked
from opsgate.guard.pii import Detector
from opsgate.guard.redact import OMITTED, Redaction, Redactor, StreamRestorer
from opsgate.guard.stream import filter_response, filter_stream

REDACTOR = Redactor(Detector(region="US"))
EMAIL, EMAIL2, PHONE = "ann@example.com", "bob@example.org", "+1 415-555-2671"


def test_typed_placeholders_consistent_per_value_and_numbered_in_order() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": f"I am {EMAIL}, call {PHONE}"},
        {"role": "assistant", "content": f"Noted {EMAIL}."},
        {"role": "user", "content": [{"type": "text", "text": f"cc {EMAIL2} and {EMAIL}"}]},
    ]
    before = copy.deepcopy(messages)
    out, findings, redaction = REDACTOR.redact_messages(messages)
    assert messages == before, "the caller's messages are not changed"
    assert out[1]["content"] == "I am <EMAIL_1>, call <PHONE_1>"
    assert out[2]["content"] == "Noted <EMAIL_1>."
    assert out[3]["content"][0]["text"] == "cc <EMAIL_2> and <EMAIL_1>"
    assert out[0] is messages[0], "untouched messages are shared, not copied"
    assert len(findings) == 5 and len(redaction) == 3
    # the same conversation again numbers the same way
    again, _, _ = REDACTOR.redact_messages(messages)
    assert again == out


def test_restore_round_trip() -> None:
    text = f"Write to {EMAIL} or {EMAIL2}; phone {PHONE}."
    redaction = Redaction()
    masked = REDACTOR.mask_text(text, redaction)
    assert EMAIL not in masked and "<EMAIL_2>" in masked
    assert redaction.restore(masked) == text
    assert redaction.restore("unknown <EMAIL_9> stays") == "unknown <EMAIL_9> stays"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_stream_restore_with_placeholders_split_anywhere(size: int) -> None:
    redaction = Redaction()
    answer = redaction.apply(
        f"Dear {EMAIL}, we will call {PHONE} <soon> a<b and <EMAIL_1",
        REDACTOR.detector.find(f"Dear {EMAIL}, we will call {PHONE} <soon> a<b and <EMAIL_1"),
    )
    assert "<EMAIL_1>" in answer and "<PHONE_1>" in answer
    restorer = StreamRestorer(redaction)
    pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
    shown = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert shown == redaction.restore(answer)
    assert EMAIL in shown and PHONE in shown and "<soon>" in shown
    assert shown.endswith("<EMAIL_1"), "an unfinished placeholder is shown as it is at the end"


def test_holds_back_only_what_could_still_be_a_placeholder() -> None:
    restorer = StreamRestorer(Redaction())
    assert restorer.feed("a < b") == "a < b"  # a space after `<`: cannot be a placeholder
    assert restorer.feed(" <EMA") == " "
    assert restorer.feed("IL") == ""
    assert restorer.flush() == "<EMAIL"


def _chunk(content: str | None, finish: str | None = None, index: int = 0) -> ChatChunk:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return ChatChunk(
        {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
    )


async def _collect(chunks: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [c async for c in chunks]


def test_filter_stream_releases_held_text_with_the_finish_chunk() -> None:
    redaction = Redaction()
    token = redaction.placeholder("EMAIL", EMAIL)

    async def upstream() -> AsyncIterator[ChatChunk]:
        for piece in ["Hi ", token[:4], token[4:], " and <", "EMAIL"]:
            yield _chunk(piece)
        yield _chunk(None, "stop")
        yield ChatChunk({"id": "c1", "choices": [], "usage": {"prompt_tokens": 1}})

    out = asyncio.run(_collect(filter_stream(upstream(), lambda: StreamRestorer(redaction))))
    texts = [c.text for c in out]
    assert "".join(texts) == f"Hi {EMAIL} and <EMAIL"
    assert texts[-2] == "<EMAIL" and out[-2].body["choices"][0]["finish_reason"] == "stop"
    assert out[-1].is_usage_only


def test_filter_stream_without_finish_reason_sends_a_last_chunk() -> None:
    redaction = Redaction()
    token = redaction.placeholder("EMAIL", EMAIL)

    async def upstream() -> AsyncIterator[ChatChunk]:
        yield _chunk("x " + token[:3])

    out = asyncio.run(_collect(filter_stream(upstream(), lambda: StreamRestorer(redaction))))
    assert [c.text for c in out] == ["x ", token[:3]]
    assert out[-1].body["id"] == "c1"


def test_filter_response_restores_content_and_tool_arguments() -> None:
    redaction = Redaction()
    token = redaction.placeholder("EMAIL", EMAIL)
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": f"mail {token}",
                    "tool_calls": [
                        {"function": {"name": "send", "arguments": f'{{"to":"{token}"}}'}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    out = filter_response(ChatResponse(body), lambda: StreamRestorer(redaction)).body
    message = out["choices"][0]["message"]
    assert message["content"] == f"mail {EMAIL}"
    assert message["tool_calls"][0]["function"]["arguments"] == f'{{"to":"{EMAIL}"}}'


def test_slots_cover_content_parts_tool_results_and_tool_arguments() -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": "data:x"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]},
        {"role": "tool", "content": "result"},
        {"role": "user", "content": "b", "untrusted": True},
        {"role": "user", "content": [{"type": "text", "text": "c", "untrusted": True}]},
    ]
    found = [(s.index, s.path, s.text, s.untrusted) for s in slots(messages)]
    assert found == [
        (0, ("content", 0, "text"), "a", False),
        (1, ("tool_calls", 0, "function", "arguments"), "{}", False),
        (2, ("content",), "result", True),
        (3, ("content",), "b", True),
        (4, ("content", 0, "text"), "c", True),
    ]
    clean = unmarked(messages)
    assert "untrusted" not in clean[3] and "untrusted" not in clean[4]["content"][0]
    assert "untrusted" in messages[3], "the caller's objects keep their marks"
    changed = rewrite(messages, {(4, ("content", 0, "text")): "C"})
    assert changed[4]["content"][0]["text"] == "C" and messages[4]["content"][0]["text"] == "c"


def test_masking_stored_bodies_drops_what_it_cannot_scan() -> None:
    redactor = Redactor(Detector(region="US"), limit=40)
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "x" * 100 + f" old {EMAIL}"},
            {"role": "user", "content": f"new {EMAIL2}"},
        ],
    }
    masked = redactor.mask_json(body)
    # newest first: the new turn (19 characters) fits, the old one is cut after 21
    assert masked["messages"][0]["content"] == "x" * 21 + OMITTED
    assert masked["messages"][1]["content"] == "new <EMAIL_1>"
    assert redactor.mask_json({"model": "e", "input": [f"to {EMAIL}", 3]})["input"] == [
        "to <EMAIL_1>",
        3,
    ]
    assert redactor.mask_text("y" * 50).endswith(OMITTED)
