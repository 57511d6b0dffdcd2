"""Versions as pushed: variables declared and typed, templates checked with line and column,
the size limit, the content hash; and the values a request binds to the variables."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsgate.prompts.errors import TemplateSyntaxError, TemplateTooLargeError, VariableError
from opsgate.prompts.spec import MAX_TEMPLATE_CHARS, PromptSpec
from opsgate.prompts.variables import bind
from tests.prompts.helpers import TRIAGE, triage


def spec(**changes: Any) -> PromptSpec:
    return PromptSpec.model_validate(triage(**changes))


def test_bind_fills_defaults_and_checks_every_variable() -> None:
    declared = spec().variables
    assert bind(declared, {"ticket": "hi"}) == {"ticket": "hi", "tier": "free", "history": None}
    assert bind(declared, {"ticket": "hi", "tier": "pro", "history": ["a"]})["history"] == ["a"]
    cases: list[tuple[Any, str, str]] = [
        ({}, "missing_variable", "variables.ticket"),
        ({"ticket": None}, "missing_variable", "variables.ticket"),
        ({"ticket": "x", "extra": 1}, "unknown_variable", "variables.extra"),
        ({"ticket": 3}, "invalid_variable_type", "variables.ticket"),
        ({"ticket": "x", "tier": "gold"}, "invalid_variable_type", "variables.tier"),
        ({"ticket": "x" * 4001}, "invalid_variable_type", "variables.ticket"),
        ({"ticket": "x", "history": "not a list"}, "invalid_variable_type", "variables.history"),
        (["ticket"], "invalid_variables", "variables"),
    ]
    for sent, code, param in cases:
        with pytest.raises(VariableError) as info:
            bind(declared, sent)
        assert (info.value.code, info.value.param, info.value.status) == (code, param, 400), sent


def test_json_types_are_strict() -> None:
    declared = PromptSpec.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "{{ n }}{{ f }}{{ b }}{{ o }}"}],
            "variables": {
                "n": {"type": "integer"},
                "f": {"type": "number"},
                "b": {"type": "boolean"},
                "o": {"type": "object"},
            },
        }
    ).variables
    good = {"n": 1, "f": 1.5, "b": False, "o": {}}
    assert bind(declared, good) == good
    for name, bad in (("n", True), ("n", 1.5), ("f", "1"), ("b", 0), ("o", [])):
        with pytest.raises(VariableError, match=repr(name)):
            bind(declared, {**good, name: bad})


def test_compile_names_the_message_line_and_column() -> None:
    bad = [TRIAGE["messages"][0], {"role": "user", "content": "one\ntwo {% if ticket %}"}]
    with pytest.raises(TemplateSyntaxError) as info:
        spec(messages=bad).compile()
    assert info.value.param == "messages[1].content"
    assert (info.value.line, info.value.column) == (2, 8)
    assert info.value.message.startswith("messages[1].content: line 2, column 8:")


def test_every_variable_a_template_reads_must_be_declared() -> None:
    bad = [{"role": "user", "content": "{{ ticket }} and\n  {{ customer }}"}]
    with pytest.raises(TemplateSyntaxError) as info:
        spec(messages=bad).compile()
    assert info.value.code == "undeclared_variable"
    assert "'customer'" in info.value.message and (info.value.line, info.value.column) == (2, 6)


def test_a_template_over_the_limit_is_413() -> None:
    huge = [{"role": "system", "content": "x" * (MAX_TEMPLATE_CHARS + 1)}]
    with pytest.raises(TemplateTooLargeError) as info:
        spec(messages=huge)
    assert info.value.status == 413


@pytest.mark.parametrize(
    "changes",
    [
        {"params": {"stream": True}},
        {"params": {"model": "other"}},
        {"variables": {"loop": {"type": "string"}}},
        {"variables": {"1bad": {"type": "string"}}},
        {"variables": {"x": {"type": "str"}}},
        {"variables": {"x": {"type": "integer", "default": "3"}}},
        {"variables": {"x": {"required": True, "default": "a"}}},
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"unknown_field": 1},
    ],
)
def test_bad_specs_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(**changes)


def test_content_hash_covers_what_is_served_only() -> None:
    a = spec()
    assert a.content_hash() == spec().content_hash()
    assert spec(params={"temperature": 0.3}).content_hash() != a.content_hash()
    reordered = {**TRIAGE["variables"]}
    assert spec(variables=dict(reversed(reordered.items()))).content_hash() == a.content_hash()
