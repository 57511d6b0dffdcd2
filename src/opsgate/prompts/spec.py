"""What one prompt version holds (`PromptSpec`), checked when it is pushed, and its content hash.

The same model validates a YAML file (`opsgate prompts push`) and the admin API's body, so a
file that pushes also validates, and a syntax error names the message, line and column. The
content hash covers exactly the fields that change what is served (not the commit message or
author): pushing an unchanged file finds the same hash and creates no version, and the hash is
the ETag of `GET /v1/prompts/{name}`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsgate.prompts.errors import TemplateSyntaxError, TemplateTooLargeError
from opsgate.prompts.template import Template
from opsgate.prompts.variables import NAME_PATTERN, RESERVED, Variable

MAX_TEMPLATE_CHARS = 256 * 1024
"""All message templates of a version together; a bigger one is refused (413)."""
PROMPT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
LABEL_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
FIELDS_OF_THEIR_OWN = frozenset({"model", "response_format", "tools"})
"""Request fields a prompt sets outside `params` (and a request may override if allowed)."""
NOT_PARAMS = frozenset({"messages", "stream", "variables", "prompt", *FIELDS_OF_THEIR_OWN})

Role = Literal["system", "developer", "user", "assistant"]


class MessageTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str
    name: str | None = Field(default=None, max_length=64)


class PromptSpec(BaseModel):
    """The content of a version: everything that decides what gets sent upstream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[MessageTemplate, ...] = Field(min_length=1, max_length=256)
    model: str = Field(min_length=1, max_length=256)
    params: dict[str, Any] = Field(default_factory=dict)
    """Sampling and other request fields (`temperature`, `max_tokens`, `tool_choice`, ...)."""
    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    variables: dict[str, Variable] = Field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    """Fields a request may set to another value than the prompt's (`temperature`, `model`);
    any other field the prompt sets is fixed (a different value is a 400)."""
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(value) & NOT_PARAMS)
        if clash:
            raise ValueError(
                f"{clash[0]!r} is not a parameter here (a field of its own, or "
                "not something a prompt sets)"
            )
        return value

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, Variable]) -> dict[str, Variable]:
        for name in value:
            if not _VARIABLE_NAME.match(name) or name in RESERVED:
                raise ValueError(
                    f"variable name {name!r}: letters, digits and _, starting with a letter, "
                    f"not one of {', '.join(sorted(RESERVED))}"
                )
        return value

    @model_validator(mode="after")
    def _size(self) -> PromptSpec:
        size = sum(len(m.content) for m in self.messages)
        if size > MAX_TEMPLATE_CHARS:
            raise TemplateTooLargeError(
                f"the message templates hold {size} characters; at most {MAX_TEMPLATE_CHARS}"
            )
        return self

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the content (sorted keys, no nulls)."""
        data = self.model_dump(mode="json", exclude_none=True)
        raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()

    def compile(self) -> tuple[Template, ...]:
        """Every message template parsed, and every variable they read declared; else a 400
        naming the message, line and column."""
        templates = []
        for i, message in enumerate(self.messages):
            where = f"messages[{i}].content"
            try:
                template = Template(message.content)
            except TemplateSyntaxError as exc:
                raise exc.at(where) from None
            for name, path in template.variables.items():
                if name not in self.variables:
                    declared = ", ".join(sorted(self.variables)) or "none"
                    error = TemplateSyntaxError(
                        f"the template reads variable {name!r}, which is not declared under "
                        f"`variables` (declared: {declared})",
                        path.line,
                        path.column,
                        where=where,
                    )
                    error.code = "undeclared_variable"
                    raise error
            templates.append(template)
        return tuple(templates)


def is_label(name: str) -> bool:
    return _LABEL.match(name) is not None


_VARIABLE_NAME = re.compile(NAME_PATTERN)
_LABEL = re.compile(LABEL_PATTERN)


class PromptPush(PromptSpec):
    """The admin API's body for a new version: the content, plus the prompt's name, its team
    (admins only), the commit message and labels to point at the result."""

    name: str = Field(min_length=1, max_length=128)
    team_id: str | None = Field(default=None, min_length=1)
    message: str | None = Field(default=None, max_length=4000)
    labels: tuple[str, ...] = Field(default=(), max_length=16)

    def spec(self) -> PromptSpec:
        content = self.model_dump(exclude={"name", "team_id", "message", "labels"})
        return PromptSpec.model_validate(content)
