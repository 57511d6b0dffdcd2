"""Rule scorers against hand-computed cases."""

from __future__ import annotations

import pytest

from opsgate.evals.scorers import Sample, ScorerConfigError, apply, build_scorer


async def run(spec: object, **fields: object) -> tuple[float | None, str, str | None]:
    row = {k: v for k, v in fields.items() if k not in ("input", "output", "expected", "context")}
    sample = Sample(
        input=fields.get("input"),  # type: ignore[arg-type]
        output=fields.get("output"),  # type: ignore[arg-type]
        expected=fields.get("expected"),  # type: ignore[arg-type]
        context=fields.get("context"),  # type: ignore[arg-type]
        row=row,
    )
    result = await apply(build_scorer(spec), sample)  # type: ignore[arg-type]
    return result.value, result.reason, result.error


@pytest.mark.parametrize(
    ("spec", "output", "expected", "value"),
    [
        ("exact", "Paris", "paris", 1.0),
        ("exact", "  Paris \n", "Paris", 1.0),
        ("exact", "Paris.", "Paris", 0.0),
        ({"type": "exact", "case_sensitive": True}, "paris", "Paris", 0.0),
        ("contains", "The capital is Paris.", "paris", 1.0),
        ("contains", "The capital is Lyon.", "Paris", 0.0),
        ({"type": "contains", "values": ["refund", "30 days"]}, "Refund within 30 days", None, 1.0),
        ({"type": "contains", "values": ["refund", "90 days"]}, "Refund within 30 days", None, 0.0),
        ({"type": "contains", "values": ["a", "zz"], "mode": "any"}, "abc", None, 1.0),
        ({"type": "regex", "pattern": r"\bORD-\d{4}\b"}, "your order ORD-1234 ships", None, 1.0),
        ({"type": "regex", "pattern": r"\d+", "full": True}, "123 apples", None, 0.0),
        ({"type": "regex", "pattern": "yes", "flags": "i"}, "YES", None, 1.0),
        ("numeric", "The total is 1,234.50 USD", "1234.5", 1.0),
        ({"type": "numeric", "abs_tol": 0.1}, "about 3.14", "3.2", 1.0),
        ({"type": "numeric", "abs_tol": 0.01}, "about 3.14", "3.2", 0.0),
        ({"type": "numeric", "rel_tol": 0.05}, "-96", "-100", 1.0),
        ("numeric", "no idea", "4", 0.0),
    ],
)
async def test_rule_values(spec: object, output: str, expected: str | None, value: float) -> None:
    got, _, error = await run(spec, output=output, expected=expected)
    assert error is None
    assert got == value


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


@pytest.mark.parametrize(
    ("output", "value", "reason"),
    [
        ('{"name": "Ada", "age": 36}', 1.0, ""),
        ('```json\n{"name": "Ada"}\n```', 1.0, ""),
        ('{"name": "Ada", "age": -1}', 0.0, "age: -1 is less than the minimum of 0"),
        ('{"age": 3}', 0.0, "(root): 'name' is a required property"),
        ("Sure! here it is", 0.0, "not JSON"),
    ],
)
async def test_json_schema(output: str, value: float, reason: str) -> None:
    got, why, error = await run({"type": "json_schema", "schema": SCHEMA}, output=output)
    assert (got, error) == (value, None)
    assert reason in why


async def test_json_schema_from_the_row() -> None:
    got, _, _ = await run("json_schema", output='{"name": 1}', schema=SCHEMA)
    assert got == 0.0
    _, _, error = await run("json_schema", output="{}", schema="not a schema")
    assert error is not None and "must be a JSON object" in error


async def test_a_missing_field_is_a_failed_result_naming_it() -> None:
    value, _, error = await run("exact", output="Paris")
    assert value is None
    assert error == "row has no `expected` (needed by exact)"
    _, _, error = await run("numeric", output="3", expected="three")
    assert error == "expected value 'three' is not a number"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown scorer type 'nope'"),
        ({"type": "regex", "pattern": "("}, "bad pattern"),
        ({"type": "regex", "pattern": "a", "flags": "q"}, "unknown flag"),
        ({"type": "regex"}, "bad parameters"),
        ({"type": "exact", "colour": "red"}, "bad parameters"),
        ({"type": "contains", "mode": "some"}, "mode must be"),
        ({"type": "numeric", "abs_tol": -1}, "tolerances"),
        ({"type": "json_schema", "schema": {"type": "nonsense"}}, "invalid schema"),
        (3, "a type name or a mapping"),
    ],
)
def test_bad_specs_are_400s(spec: object, message: str) -> None:
    with pytest.raises(ScorerConfigError, match=message) as info:
        build_scorer(spec)  # type: ignore[arg-type]
    assert info.value.status == 400
