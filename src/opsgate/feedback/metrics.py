"""Checking a score against the declared metrics: the body of `POST /v1/feedback`, item by item.

A request carries one score (the body is the score) or several (`{"scores": [...]}`). Each is
checked here before anything is looked up or stored, and the first problem is a 400 naming its
field (`scores[3].value`): an unknown metric, a value of the wrong type or out of range, a
category value not declared, a comment or correction over its limit, an unknown field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, get_args

from opsgate.config.feedback import FeedbackConfig, Level, MetricConfig, MetricType
from opsgate.errors import BadRequestError, PayloadTooLargeError
from opsgate.feedback.scores import ScoreSource
from opsgate.identity import MAX_ID_LENGTH, check_id

FIELDS = frozenset(
    {
        "metric",
        "value",
        "trace_id",
        "session_id",
        "comment",
        "correction",
        "idempotency_key",
        "source",
        "metadata",
    }
)
MAX_METADATA = 32
"""Metadata entries per score (keys and values are short strings)."""
MAX_METADATA_CHARS = 256
_MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "refusal", "name"})


@dataclass(frozen=True, slots=True)
class ScoreInput:
    """One score as the caller sent it, checked against its metric's declaration."""

    metric: str
    type: MetricType
    level: Level
    trace_id: str | None = None
    session_id: str | None = None
    value: float | None = None
    label: str | None = None
    comment: str | None = None
    correction: dict[str, Any] | None = None
    idempotency_key: str | None = None
    source: ScoreSource | None = None
    """None: the caller's default (`api` for a key, `end_user` for a feedback token)."""
    metadata: dict[str, str] = field(default_factory=dict)
    param: str = ""
    """Where this score sits in the request (`scores[3].`), for error messages."""


def _bad(param: str, message: str, code: str = "invalid_value") -> BadRequestError:
    return BadRequestError(message, code=code, param=param)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def scores_of(body: dict[str, Any], config: FeedbackConfig) -> list[ScoreInput]:
    """Every score of a request body, checked; 413 beyond `max_batch`."""
    if "scores" not in body:
        return [parse_score(body, config, "")]
    if set(body) != {"scores"}:
        extra = sorted(set(body) - {"scores"})[0]
        raise _bad(
            extra, f"a batch body holds only 'scores'; unknown field {extra!r}", "unknown_field"
        )
    items = body["scores"]
    if not isinstance(items, list) or not items:
        raise _bad("scores", "scores must be a non-empty list of score objects", "invalid_type")
    if len(items) > config.max_batch:
        raise PayloadTooLargeError(
            f"{len(items)} scores in one request; at most {config.max_batch} are allowed",
            code="too_many_scores",
            param="scores",
        )
    return [parse_score(item, config, f"scores[{i}].") for i, item in enumerate(items)]


def parse_score(data: Any, config: FeedbackConfig, at: str) -> ScoreInput:
    """One score object, checked; `at` prefixes every field name in errors."""
    if not isinstance(data, dict):
        raise _bad(at.rstrip(".") or "body", f"a score must be a JSON object, got {_kind(data)}")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        known = ", ".join(sorted(FIELDS))
        raise _bad(
            f"{at}{unknown[0]}", f"unknown field {unknown[0]!r}; known: {known}", "unknown_field"
        )
    name = data.get("metric")
    if not isinstance(name, str) or not name:
        raise _bad(
            f"{at}metric",
            "metric is required: the name of a declared metric",
            "missing_required_parameter",
        )
    metric = config.metrics.get(name)
    if metric is None:
        declared = ", ".join(sorted(config.metrics)) or "none"
        raise _bad(
            f"{at}metric", f"unknown metric {name!r}; declared: {declared}", "unknown_metric"
        )
    if "value" not in data:
        raise _bad(
            f"{at}value", f"value is required for metric {name!r}", "missing_required_parameter"
        )
    value, label, comment = _value(metric, name, data["value"], f"{at}value", config)
    if data.get("comment") is not None:
        if metric.type == "comment":
            raise _bad(f"{at}comment", f"metric {name!r} is a comment: send the text as value")
        comment = _text(data["comment"], f"{at}comment", config.max_comment_chars)
    trace_id, session_id = _ids(data, metric, name, at)
    return ScoreInput(
        metric=name,
        type=metric.type,
        level=metric.level,
        trace_id=trace_id,
        session_id=session_id,
        value=value,
        label=label,
        comment=comment,
        correction=_correction(data.get("correction"), f"{at}correction", config),
        idempotency_key=_optional_id(data, "idempotency_key", at),
        source=_source(data.get("source"), f"{at}source"),
        metadata=_metadata(data.get("metadata"), f"{at}metadata"),
        param=at,
    )


def _value(
    metric: MetricConfig, name: str, value: Any, param: str, config: FeedbackConfig
) -> tuple[float | None, str | None, str | None]:
    """(value, label, comment) for the metric's type."""
    if metric.type == "boolean":
        if not isinstance(value, bool):
            raise _bad(
                param,
                f"metric {name!r} is boolean: value must be true or false, got {_kind(value)}",
                "invalid_type",
            )
        return (1.0 if value else 0.0), None, None
    if metric.type == "float":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _bad(
                param,
                f"metric {name!r} is a float: value must be a finite number, got {_kind(value)}",
                "invalid_type",
            )
        low, high = metric.min, metric.max
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"between {_g(low)} and {_g(high)}"
            raise _bad(param, f"metric {name!r} takes values {span}; got {value}")
        return float(value), None, None
    if metric.type == "category":
        allowed = metric.values or ()
        if not isinstance(value, str):
            raise _bad(
                param,
                f"metric {name!r} is a category: value must be a string, got {_kind(value)}",
                "invalid_type",
            )
        if value not in allowed:
            raise _bad(
                param, f"{value!r} is not a value of metric {name!r}; allowed: {', '.join(allowed)}"
            )
        return None, value, None
    return None, None, _text(value, param, config.max_comment_chars)


def _g(bound: float | None) -> str:
    return "-inf" if bound is None else f"{bound:g}"


def _text(value: Any, param: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _bad(param, f"{param} must be a string, got {_kind(value)}", "invalid_type")
    if not value.strip():
        raise _bad(param, f"{param} is empty")
    if len(value) > limit:
        raise PayloadTooLargeError(
            f"{param} is {len(value)} characters; at most {limit} are allowed",
            code="comment_too_long",
            param=param,
        )
    return value


def _ids(
    data: dict[str, Any], metric: MetricConfig, name: str, at: str
) -> tuple[str | None, str | None]:
    trace_id = _optional_id(data, "trace_id", at)
    session_id = _optional_id(data, "session_id", at)
    if metric.level == "inference":
        if trace_id is None:
            raise _bad(
                f"{at}trace_id",
                f"metric {name!r} scores one answer: trace_id is required",
                "missing_required_parameter",
            )
        if session_id is not None:
            raise _bad(
                f"{at}session_id",
                f"metric {name!r} scores one answer (level: inference), not a session",
            )
    elif trace_id is None and session_id is None:
        raise _bad(
            f"{at}session_id",
            f"metric {name!r} scores a session: give session_id (or a trace_id of the session)",
            "missing_required_parameter",
        )
    return trace_id, session_id


def _optional_id(data: dict[str, Any], name: str, at: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{at}{name}", f"{name} must be a string, got {_kind(value)}", "invalid_type")
    try:
        check_id(value, what=name.replace("_", " "), param=f"{at}{name}")
    except BadRequestError as exc:
        raise _bad(f"{at}{name}", exc.message, "invalid_id") from None
    return value


def _source(value: Any, param: str) -> ScoreSource | None:
    if value is None:
        return None
    if value not in get_args(ScoreSource):
        allowed = ", ".join(get_args(ScoreSource))
        raise _bad(param, f"source must be one of {allowed}; got {value!r}")
    source: ScoreSource = value
    return source


def _metadata(value: Any, param: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA:
        raise _bad(
            param,
            f"metadata must be an object of at most {MAX_METADATA} string values",
            "invalid_type",
        )
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > MAX_ID_LENGTH or len(item) > MAX_METADATA_CHARS:
            raise _bad(
                f"{param}.{key}",
                f"metadata values are strings of at most {MAX_METADATA_CHARS} characters",
                "invalid_type",
            )
    return dict(value)


def _correction(value: Any, param: str, config: FeedbackConfig) -> dict[str, Any] | None:
    """The better answer, as an assistant message: a string, or a message object."""
    if value is None:
        return None
    if isinstance(value, str):
        _text(value, param, config.max_correction_chars)
        return {"role": "assistant", "content": value}
    if not isinstance(value, dict):
        raise _bad(
            param,
            f"correction must be a string or an assistant message, got {_kind(value)}",
            "invalid_type",
        )
    unknown = sorted(set(value) - _MESSAGE_FIELDS)
    if unknown:
        raise _bad(
            f"{param}.{unknown[0]}", f"unknown message field {unknown[0]!r}", "unknown_field"
        )
    if value.get("role", "assistant") != "assistant":
        raise _bad(f"{param}.role", "a correction is the better answer: its role is assistant")
    content = value.get("content")
    if content is None and not value.get("tool_calls"):
        raise _bad(
            f"{param}.content",
            "a correction needs content (or tool_calls)",
            "missing_required_parameter",
        )
    if content is not None and not isinstance(content, str | list):
        raise _bad(
            f"{param}.content",
            "content must be a string or a list of content parts",
            "invalid_type",
        )
    size = len(str(value))
    if size > config.max_correction_chars:
        raise PayloadTooLargeError(
            f"{param} is {size} characters; at most {config.max_correction_chars} are allowed",
            code="correction_too_long",
            param=param,
        )
    return {"role": "assistant", **value}
