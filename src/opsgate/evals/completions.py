"""Per-trace confidence and malformed answers, taken as the answer passes the Record stage.

- **Confidence**: when the request asked for `logprobs` and the upstream returned them, the
  trace keeps the mean and the least token log-probability of the first choice's content.
- **Malformed**: an answer cut at `finish_reason: length` is `truncated` (the Record stage sets
  it from the finish reason, for every request); an answer that finished normally (`stop`)
  to a request with `response_format` `json_schema` (or `json_object`) and is not JSON valid
  against that schema is `invalid_json`. A truncated answer is never also checked.

Nothing is read or kept unless the request asked for one of the two, so other requests pay one
attribute look-up. Validators are compiled once per distinct schema (an LRU of 256).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jsonschema
import orjson

from opsgate.chat import ChatRequest
from opsgate.trace import TraceRecord

TRUNCATED = "truncated"
INVALID_JSON = "invalid_json"


@functools.lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Any:
    """A compiled validator, or None for a schema that is not valid itself (the upstream
    judges those; the answer is then only required to be JSON)."""
    schema = orjson.loads(schema_json)
    if not isinstance(schema, dict):
        return None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError:
        return None
    return cls(schema)


class JsonCheck:
    """Is an answer JSON (an object for `json_object`), valid against a schema if given?"""

    def __init__(self, schema: Mapping[str, Any] | None, *, object_only: bool = False) -> None:
        self.validator = (
            _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)) if schema else None
        )
        self.object_only = object_only

    @classmethod
    def of(cls, response_format: Any) -> JsonCheck | None:
        if not isinstance(response_format, Mapping):
            return None
        kind = response_format.get("type")
        if kind == "json_object":
            return cls(None, object_only=True)
        if kind != "json_schema":
            return None
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        return cls(schema if isinstance(schema, Mapping) else None)

    def problem(self, text: str) -> str | None:
        """Why `text` is not a valid answer, or None."""
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return f"not JSON: {exc}"
        if self.object_only and not isinstance(value, dict):
            return "not a JSON object"
        if self.validator is None:
            return None
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{where}: {error.message}"


class CompletionCheck:
    """One request's tally: feed it the answer (`response`) or each chunk (`chunk`), then
    `apply` it to the trace once the answer is complete."""

    __slots__ = ("_count", "_json", "_least", "_logprobs", "_parts", "_sum")

    def __init__(self, logprobs: bool, json: JsonCheck | None) -> None:
        self._logprobs = logprobs
        self._json = json
        self._sum = 0.0
        self._count = 0
        self._least = math.inf
        self._parts: list[str] = []

    @classmethod
    def of(cls, req: ChatRequest) -> CompletionCheck | None:
        """A check for what `req` asked for, or None when it asked for neither."""
        logprobs = req.params.get("logprobs") is True
        json = JsonCheck.of(req.params.get("response_format"))
        if not logprobs and json is None:
            return None
        return cls(logprobs, json)

    def _tokens(self, logprobs: Any) -> None:
        content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
        for token in content or ():
            value = token.get("logprob") if isinstance(token, Mapping) else None
            if isinstance(value, int | float) and math.isfinite(value):
                self._sum += value
                self._count += 1
                self._least = min(self._least, float(value))

    def response(self, body: Mapping[str, Any]) -> None:
        """A whole answer: its first choice."""
        for choice in body.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            if self._logprobs:
                self._tokens(choice.get("logprobs"))
            message = choice.get("message")
            content = message.get("content") if isinstance(message, Mapping) else None
            if self._json is not None and isinstance(content, str):
                self._parts.append(content)
            return

    def chunk(self, body: Mapping[str, Any]) -> None:
        """One streamed chunk: the first choice's logprobs and content."""
        for choice in body.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            if self._logprobs:
                self._tokens(choice.get("logprobs"))
            if self._json is not None:
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, Mapping) else None
                if isinstance(content, str):
                    self._parts.append(content)

    def apply(self, trace: TraceRecord) -> None:
        """Set the trace's confidence, and `invalid_json` on an answer that finished normally
        and does not validate."""
        if self._count:
            trace.logprob_mean = self._sum / self._count
            trace.logprob_min = self._least
        if self._json is None or trace.malformed is not None or trace.finish_reason != "stop":
            return
        if self._json.problem("".join(self._parts)) is not None:
            trace.malformed = INVALID_JSON
