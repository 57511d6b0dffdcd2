"""Per-model input schemas: a model whose requests are structured (an extraction or
classification endpoint fed JSON documents) declares a JSON Schema under
`guard.models.<model>.input_schema`, and every user message of a request to it must be a JSON
document that satisfies it.

The text of a user message (a string, or its text parts joined) is parsed as JSON and
validated; system, developer, assistant and tool messages are not checked (they are the
application's or the model's, not the caller's input). A violation is a `schema` verdict:
`block` answers 400 `input_schema_violation` naming the message and the JSON path that failed,
`flag` lets the request through with the verdict on the trace and in metrics. The verdict names
the failed schema keyword (`type`, `required`, ..., or `not_json`), never the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

from opsgate.config.guard import ModelGuardConfig
from opsgate.errors import BadRequestError
from opsgate.guard.verdicts import Verdict

CODE = "input_schema_violation"
_MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class SchemaResult:
    verdict: Verdict
    error: BadRequestError | None
    """Set when the model's action is `block`."""


@dataclass(frozen=True, slots=True)
class _Rule:
    validator: Any
    action: str


def json_path(parts: Any) -> str:
    """`$.items[2].qty` for the path (`deque(['items', 2, 'qty'])`) of a failed value."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def message_text(content: Any) -> str | None:
    """The text of a message's content: a string, or its text parts joined (None if neither)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        found = [t for t in texts if isinstance(t, str)]
        return "".join(found) if found else None
    return None


class InputSchemas:
    """The compiled schemas of one runtime, by public model name."""

    def __init__(self, models: Mapping[str, ModelGuardConfig]) -> None:
        self._rules: dict[str, _Rule] = {}
        for name, settings in models.items():
            schema = settings.input_schema
            cls = jsonschema.validators.validator_for(schema)
            validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
            self._rules[name] = _Rule(validator, settings.input_schema_action)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def check(self, model: str, messages: list[Any]) -> SchemaResult | None:
        """None when `model` has no schema or every user message satisfies it; else the
        first violation."""
        rule = self._rules.get(model)
        if rule is None:
            return None
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            problem = _violation(rule.validator, message_text(message.get("content")))
            if problem is None:
                continue
            keyword, where, why = problem
            verdict = Verdict("schema", "input", "block" if rule.action == "block" else "flag",
                              ((keyword, 1),))  # fmt: skip
            error = None
            if rule.action == "block":
                text = (
                    f"messages[{index}].content does not satisfy the input schema of model "
                    f"{model!r} at {where}: {why}"
                )
                error = BadRequestError(
                    text[:_MAX_MESSAGE], code=CODE, param=f"messages[{index}].content"
                )
            return SchemaResult(verdict, error)
        return None


def _violation(validator: Any, text: str | None) -> tuple[str, str, str] | None:
    """(schema keyword, JSON path, why) of the most relevant error, or None when valid."""
    if text is None or not text.strip():
        return "not_json", "$", "the message has no text (a JSON document is expected)"
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return "not_json", "$", f"the text is not JSON ({exc})"
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    return str(error.validator), json_path(error.absolute_path), error.message
