"""A prompt's declared variables, and checking the values a request sends against them.

Every value a template reads must be declared (checked when a version is pushed), so a request
that sends an undeclared name, leaves out a required one or sends the wrong JSON type is a 400
naming that variable, before anything is rendered or sent upstream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsgate.prompts.errors import VariableError

VariableType = Literal["string", "integer", "number", "boolean", "array", "object"]
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
RESERVED = frozenset({"loop", "true", "false", "none", "null", "not", "and", "or", "in"})


class Variable(BaseModel):
    """One declared variable. Without a `default` it is required unless `required: false`
    (then it is null when not sent); with a default it is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: VariableType = "string"
    required: bool | None = None
    default: Any = None
    description: str | None = Field(default=None, max_length=1000)
    enum: tuple[str | int | float | bool, ...] | None = Field(default=None, min_length=1)
    max_length: int | None = Field(default=None, gt=0, description="strings and arrays")

    @model_validator(mode="after")
    def _check(self) -> Variable:
        if self.required and self.default is not None:
            raise ValueError("a variable with a default is not required; drop one of them")
        if self.default is not None:
            problem = type_problem(self, self.default)
            if problem:
                raise ValueError(f"default {problem}")
        if self.enum is not None:
            for option in self.enum:
                problem = type_problem(self.model_copy(update={"enum": None}), option)
                if problem:
                    raise ValueError(f"enum value {option!r} {problem}")
        return self

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


def type_problem(var: Variable, value: Any) -> str | None:
    """What is wrong with `value` for `var` ("must be a string, got a number"), or None."""
    if not _IS[var.type](value):
        return f"must be {_A[var.type]}, got {_json_kind(value)}"
    if var.enum is not None and value not in var.enum:
        return f"must be one of {', '.join(repr(o) for o in var.enum)}"
    if var.max_length is not None and isinstance(value, str | list) and len(value) > var.max_length:
        return f"is longer than {var.max_length}"
    return None


_IS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_A = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "an array",
    "object": "an object",
}


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def bind(declared: Mapping[str, Variable], sent: Any) -> dict[str, Any]:
    """The values to render with: `sent` checked against `declared`, defaults filled in.

    400 (`VariableError`, `param` = `variables.<name>`) for a name not declared, a required
    one missing (null counts as missing), or a value of the wrong type.
    """
    if sent is None:
        sent = {}
    if not isinstance(sent, dict):
        raise VariableError(
            f"variables must be an object, got {_json_kind(sent)}",
            code="invalid_variables",
            param="variables",
        )
    for name in sent:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise VariableError(
                f"unknown variable {name!r}; this prompt declares: {known}",
                code="unknown_variable",
                param=f"variables.{name}",
            )
    values: dict[str, Any] = {}
    for name, var in declared.items():
        value = sent.get(name)
        if value is None:
            if var.is_required:
                raise VariableError(
                    f"missing required variable {name!r} ({var.type})",
                    code="missing_variable",
                    param=f"variables.{name}",
                )
            values[name] = var.default
            continue
        problem = type_problem(var, value)
        if problem:
            raise VariableError(
                f"variable {name!r} {problem}",
                code="invalid_variable_type",
                param=f"variables.{name}",
            )
        values[name] = value
    return values
