"""The shape rule scorers (json, length, refusal) against hand-computed cases."""

from __future__ import annotations

import pytest

from opsgate.evals.scorers import Sample, ScorerConfigError, apply, build_scorer


async def value(spec: object, output: str) -> float | None:
    result = await apply(build_scorer(spec), Sample(output=output))  # type: ignore[arg-type]
    return result.value


@pytest.mark.parametrize(
    ("spec", "output", "expected"),
    [
        ("json", '{"a": 1}', 1.0),
        ("json", '```json\n{"a": 1}\n```', 1.0),
        ("json", "[1, 2]", 1.0),
        ("json", "{a: 1}", 0.0),
        ("json", 'Sure! {"a": 1}', 0.0),
        ({"type": "json", "object": True}, "[1, 2]", 0.0),
        ({"type": "json", "object": True}, '{"a": [1]}', 1.0),
        ({"type": "length", "max": 5}, "hello", 1.0),
        ({"type": "length", "max": 5}, "hello!", 0.0),
        ({"type": "length", "min": 2, "unit": "words"}, "one", 0.0),
        ({"type": "length", "min": 2, "max": 3, "unit": "words"}, "one two three", 1.0),
        ("refusal", "The capital of France is Paris.", 1.0),
        ("refusal", "I'm sorry, but I can't help with that.", 0.0),
        ("refusal", "I cannot assist with this request.", 0.0),
        ("refusal", "As an AI language model, I have no opinions.", 0.0),
        ("refusal", "I can\u2019t help with that.", 0.0),
        ("refusal", "I can help with that: here it is.", 1.0),
        ({"type": "refusal", "patterns": ["^nope"]}, "Nope.", 0.0),
        ({"type": "refusal", "patterns": ["^nope"]}, "I'm sorry, no.", 1.0),
    ],
)
async def test_scores(spec: object, output: str, expected: float) -> None:
    assert await value(spec, output) == expected


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"type": "length"}, "give `min`"),
        ({"type": "length", "min": 5, "max": 2}, "min <= max"),
        ({"type": "length", "max": 2, "unit": "tokens"}, "unit"),
        ({"type": "refusal", "patterns": ["("]}, "bad pattern"),
        ({"type": "json", "strict": True}, "bad parameters"),
    ],
)
def test_bad_parameters_are_config_errors(spec: object, says: str) -> None:
    with pytest.raises(ScorerConfigError, match=says):
        build_scorer(spec)  # type: ignore[arg-type]
