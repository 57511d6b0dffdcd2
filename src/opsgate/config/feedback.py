"""The `feedback:` section of the config file: the declared metrics and how scores arrive.

Metrics are declared like TensorZero's: a name, a type (`boolean`, `float` with optional
`min`/`max`, `category` with its `values`, `comment`), which direction is better (`optimize`) and
the level a score is about (`inference`: one trace; `session`: a whole conversation by
`session_id`). A score for an undeclared metric, or of the wrong type, is refused with a 400
naming the field (feedback/metrics.py).

```yaml
feedback:
  metrics:
    thumbs: {type: boolean, optimize: max}
    rating: {type: float, min: 1, max: 5}
    resolved: {type: boolean, level: session}
    issue: {type: category, values: [wrong, unsafe, off_topic, too_long]}
  token_ttl: 1d
```
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

MetricType = Literal["boolean", "float", "category", "comment"]
Optimize = Literal["max", "min"]
Level = Literal["inference", "session"]

METRIC_NAME = r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"
"""Metric names: short, and safe as a Prometheus label value and in a URL."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _seconds(value: object) -> object:
    """`90`, `90s`, `15m`, `24h`, `1d` or `2w` as seconds (other values left to pydantic)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected a duration like 1d, 12h, 15m or seconds")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricConfig(_Strict):
    """One declared measure of quality."""

    type: MetricType
    optimize: Optimize = Field(default="max", description="which direction is better")
    level: Level = Field(
        default="inference", description="inference: one trace; session: a conversation"
    )
    min: float | None = Field(default=None, description="float: lowest allowed value")
    max: float | None = Field(default=None, description="float: highest allowed value")
    values: tuple[str, ...] | None = Field(default=None, description="category: the allowed values")
    description: str | None = None

    @model_validator(mode="after")
    def _check_shape(self) -> MetricConfig:
        if (self.min is not None or self.max is not None) and self.type != "float":
            raise ValueError("min and max apply to float metrics only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be above max")
        if self.type == "category":
            if not self.values:
                raise ValueError("a category metric needs its values")
            if len(set(self.values)) != len(self.values) or not all(self.values):
                raise ValueError("category values must be distinct, non-empty strings")
        elif self.values is not None:
            raise ValueError("values apply to category metrics only")
        return self


class FeedbackConfig(_Strict):
    """Declared metrics, feedback tokens for browsers, and the score writer's limits."""

    metrics: dict[Annotated[str, Field(pattern=METRIC_NAME)], MetricConfig] = Field(
        default_factory=dict, description="name -> metric; none declared: feedback is off"
    )
    token_ttl: Seconds = Field(
        default=86_400.0, gt=0, description="how long a feedback token is valid (e.g. 1d, 2h)"
    )
    token_metrics: tuple[str, ...] | None = Field(
        default=None,
        description="metrics a feedback token may score (default: every declared metric)",
    )
    token_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for feedback tokens (default: $OPSGATE_FEEDBACK_TOKEN_KEY, "
        "else derived from the master key)",
    )
    cors_origins: tuple[str, ...] = Field(
        default=(), description="browser origins allowed to POST /v1/feedback ('*' for any)"
    )
    max_batch: int = Field(default=1000, ge=1, le=100_000, description="scores per request")
    max_body_bytes: int = Field(default=4 * 2**20, gt=0, description="request body limit")
    max_comment_chars: int = Field(default=10_000, ge=1)
    max_correction_chars: int = Field(default=100_000, ge=1)
    queue_size: int = Field(default=20_000, ge=1, description="scores waiting to be written")
    batch_size: int = Field(default=500, ge=1)
    flush_interval: float = Field(default=0.5, gt=0, description="seconds")
    recent_traces: int = Field(
        default=20_000,
        ge=0,
        description="traces remembered in memory, so a score for a trace not yet written "
        "is accepted without a database read",
    )
    trace_wait: float = Field(
        default=1.0,
        ge=0,
        le=30,
        description="seconds to look again for a trace found nowhere yet (another "
        "replica's writer may still hold it) before answering 404",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.metrics)

    @model_validator(mode="after")
    def _check_token_metrics(self) -> FeedbackConfig:
        unknown = sorted(set(self.token_metrics or ()) - set(self.metrics))
        if unknown:
            raise ValueError(f"token_metrics names undeclared metrics: {', '.join(unknown)}")
        return self

    def token_metric_names(self) -> tuple[str, ...]:
        """What a feedback token lets a browser score, in a stable order."""
        return tuple(sorted(self.token_metrics if self.token_metrics is not None else self.metrics))
