"""The export formats without a database: the checkers themselves (they accept the published
examples and refuse what the formats forbid), and rows rendered into each format, redacted,
counted and without duplicates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opsgate.accounting.tokens import ESTIMATE
from opsgate.feedback.datasets.export import ExportOptions, Renderer, export_redactor
from opsgate.feedback.datasets.formats import chat_line, clean, preference_line
from opsgate.feedback.datasets.importer import parse_object
from opsgate.feedback.datasets.model import StoredRow
from opsgate.feedback.datasets.rows import RowContent, seal
from opsgate.store.crypto import BodyCipher, Keyring
from tests.feedback.formats import check_eval, check_openai_chat, check_preference

CIPHER = BodyCipher(Keyring.generate())

# The fine-tuning guide's examples: plain chat, multi-turn with weights, tool calls, an image.
PUBLISHED = [
    {
        "messages": [
            {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
            {"role": "user", "content": "What's the capital of France?"},
            {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
            {"role": "user", "content": "What's the capital of France?"},
            {"role": "assistant", "content": "Paris", "weight": 0},
            {"role": "user", "content": "Can you be more sarcastic?"},
            {"role": "assistant", "content": "Paris, as if everyone doesn't know.", "weight": 1},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "What is the weather in San Francisco?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_id",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{"location": "San Francisco, USA", "format": "celsius"}',
                        },
                    }
                ],
            },
        ],
        "parallel_tool_calls": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_current_weather",
                    "description": "Get the current weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                        "required": ["location"],
                    },
                },
            }
        ],
    },
    {
        "messages": [
            {"role": "system", "content": "You identify animals."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/x.jpg"}},
                ],
            },
            {"role": "assistant", "content": "A cat."},
        ]
    },
]


@pytest.mark.parametrize("example", PUBLISHED)
def test_the_checker_accepts_the_published_examples(example: dict[str, Any]) -> None:
    assert check_openai_chat(example) == []


def _with(change: dict[str, Any]) -> dict[str, Any]:
    line = json.loads(json.dumps(PUBLISHED[0]))
    line["messages"][-1].update(change)
    return line


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
        ({"prompt": "hi"}, "missing messages"),
        (_with({"role": "robot"}), "unrecognised role"),
        (_with({"weight": 2}), "weight must be 0 or 1"),
        (_with({"content": [{"type": "image_url", "image_url": {"url": "u"}}]}), "not allowed"),
        (_with({"refusal": "no"}), "not allowed for assistant"),
        (_with({"content": None}), "without content or tool calls"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "content": "42", "tool_call_id": "nope"},
                    {"role": "assistant", "content": "y"},
                ]
            },
            "answers no earlier tool call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{"},
                            }
                        ],
                    },
                ]
            },
            "arguments must be a JSON string",
        ),
        (
            {**PUBLISHED[0], "tools": [{"type": "function", "function": {"name": "a b"}}]},
            "bad function name",
        ),
    ],
)
def test_the_checker_refuses_what_the_format_forbids(line: dict[str, Any], problem: str) -> None:
    problems = check_openai_chat(line)
    assert any(problem in p for p in problems), problems


def test_preference_and_eval_checkers() -> None:
    prompt = [{"role": "user", "content": "2+2?"}]
    good = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}]}  # fmt: skip
    assert check_preference(good) == []
    assert check_preference({**good, "rejected": good["chosen"]}) != []
    assert check_preference({**good, "chosen": [{"role": "user", "content": "4"}]}) != []
    assert check_eval({"id": "r", "input": prompt, "reference": "4", "metadata": {}}) == []
    assert check_eval({"id": "r", "input": prompt, "reference": ""}) != []
    assert check_eval({"id": "r", "input": [], "reference": "4"}) != []


def test_messages_are_cleaned_into_the_fine_tuning_shape() -> None:
    content = RowContent(
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi"}, {"type": "input_audio", "x": 1}],
                "untrusted": True,
            },
        ],
        output={
            "role": "assistant",
            "content": [{"type": "text", "text": "Hello"}],
            "refusal": None,
        },
    )
    line = chat_line(content)
    assert line is not None
    assembled = line.assemble(line.messages)
    assert assembled["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "Hello"},
    ]
    assert check_openai_chat(assembled) == []
    same = clean({"role": "assistant", "content": "x"})
    assert preference_line(content, same, dict(same)) is None  # no pair from equal answers


def _stored(n: int, data: dict[str, Any]) -> StoredRow:
    item = parse_object(data, f"rows[{n}]")
    row_id = f"dr_{n}"
    return StoredRow(
        row_id, "ds_x", 1, n, None, None, None, None, item.content.input_hash(),
        item.content.output is not None, item.content.reference is not None, item.scores, {},
        seal(CIPHER, row_id, item.content), 0.0,
    )  # fmt: skip


def test_rendering_redacts_counts_and_drops_duplicates() -> None:
    rows = [
        _stored(0, {"messages": [{"role": "user", "content": "Mail ada@example.com please"}],
                    "output": "Sent to ada@example.com."}),
        _stored(1, {"messages": [{"role": "user", "content": "2+2?"}], "output": "4"}),
        _stored(2, {"messages": [{"role": "user", "content": "2+2?"}], "output": "4"}),
        _stored(3, {"messages": [{"role": "user", "content": "Capital?"}], "output": "Sydney",
                    "reference": "Canberra"}),
        _stored(4, {"messages": [{"role": "user", "content": "no answer"}]}),
    ]  # fmt: skip
    renderer = Renderer(ExportOptions("openai-chat", 1), CIPHER, export_redactor(None), ESTIMATE)
    raw = renderer.rows_of(rows)
    lines = [json.loads(x) for x in raw.decode().splitlines()]
    assert all(check_openai_chat(line) == [] for line in lines)
    assert b"ada@example.com" not in raw
    assert lines[0]["messages"][0]["content"] == "Mail <EMAIL_1> please"
    assert lines[0]["messages"][1]["content"] == "Sent to <EMAIL_1>."  # one placeholder per line
    assert lines[2]["messages"][-1]["content"] == "Canberra"  # the correction is the target
    assert (renderer.rows, renderer.duplicates, renderer.skipped) == (3, 1, 1)
    assert renderer.redactions == 2 and renderer.tokens > 0

    plain = Renderer(ExportOptions("openai-chat", 1, redact=False), CIPHER, None, ESTIMATE)
    assert b"ada@example.com" in plain.rows_of(rows[:1])

    pairs = Renderer(ExportOptions("preference", 1), CIPHER, export_redactor(None), ESTIMATE)
    [pair] = [json.loads(x) for x in pairs.rows_of(rows).decode().splitlines()]
    assert check_preference(pair) == []
    assert pair["chosen"] == [{"role": "assistant", "content": "Canberra"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "Sydney"}]


def test_two_scored_answers_to_one_input_make_a_pair() -> None:
    question = [{"role": "user", "content": "2+2?"}]
    rows = [
        _stored(0, {"messages": question, "output": "5", "scores": {"thumbs": False}}),
        _stored(1, {"messages": question, "output": "4", "scores": {"thumbs": True}}),
        _stored(2, {"messages": question, "output": "four", "scores": {"thumbs": True}}),
    ]
    renderer = Renderer(ExportOptions("preference", 1, metric="thumbs"), CIPHER, None, ESTIMATE)
    [pair] = [json.loads(x) for x in renderer.pairs_of(rows).decode().splitlines()]
    assert check_preference(pair) == []
    assert pair["chosen"][0]["content"] in ("4", "four")
    assert pair["rejected"] == [{"role": "assistant", "content": "5"}]
    lower = Renderer(
        ExportOptions("preference", 1, metric="thumbs", optimize="min"), CIPHER, None, ESTIMATE
    )
    [flipped] = [json.loads(x) for x in lower.pairs_of(rows).decode().splitlines()]
    assert flipped["chosen"] == [{"role": "assistant", "content": "5"}]
