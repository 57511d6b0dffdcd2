"""The `drift:` section of the config file: what is sampled for drift, and the monitors.

```yaml
drift:
  sample: 1.0            # share of chat traces whose features are kept for drift
  embed_sample: 0.25     # share of those whose prompt is embedded (float16, erasable)
  embedder: {type: local}
  monitors:
    - name: support-topics
      kind: input                       # input | stats | quality | operational
      scope: {model: support-bot}
      window: 1d                        # the current window (1 minute to 30 days)
      reference: {type: trailing, window: 7d}
      every: 1h
      alpha: 0.01
```

Monitors created through `/admin/v1/drift/monitors` take the same fields (docs/drift.md).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsgate.config.cache import EmbedderConfig

MonitorKind = Literal["input", "stats", "quality", "operational"]
StatName = Literal[
    "prompt_length",
    "answer_length",
    "language",
    "refusal",
    "finish_reason",
    "tool_calls",
    "json_valid",
]
ALL_STATS: tuple[StatName, ...] = (
    "prompt_length",
    "answer_length",
    "language",
    "refusal",
    "finish_reason",
    "tool_calls",
    "json_valid",
)
ProposalKind = Literal["dataset", "eval_run", "refresh_reference", "none"]
MINUTE, DAY = 60.0, 86_400.0
_UNITS = {"s": 1.0, "m": MINUTE, "h": 3600.0, "d": DAY}


def seconds(value: object) -> object:
    """`90`, `"90s"`, `"15m"`, `"1h"`, `"7d"` as seconds; anything else is left to pydantic."""
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if found:
            return float(found.group(1)) * _UNITS[found.group(2) or "s"]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftScope(_Strict):
    """Which traffic a monitor watches; every field given must match (none: all traffic)."""

    model: str | None = Field(default=None, description="the public model name asked for")
    prompt: str | None = Field(default=None, description="a prompt name")
    key: str | None = Field(default=None, description="a key id")
    team: str | None = Field(default=None, description="a team id")


class DriftReference(_Strict):
    """What the current window is compared with."""

    type: Literal["trailing", "fixed", "dataset"] = "trailing"
    window: float | None = Field(
        default=None,
        gt=0,
        description="trailing: seconds just before the current window (default 7 x window)",
    )
    start: float | None = Field(default=None, description="fixed: epoch seconds")
    end: float | None = Field(default=None, description="fixed: epoch seconds")
    dataset: str | None = Field(default=None, description="dataset: its id or name (input only)")

    seconds_window = field_validator("window", mode="before")(seconds)

    @model_validator(mode="after")
    def _complete(self) -> DriftReference:
        incomplete = self.start is None or self.end is None or self.end <= self.start
        if self.type == "fixed" and incomplete:
            raise ValueError("a fixed reference needs start < end (epoch seconds)")
        if self.type == "dataset" and not self.dataset:
            raise ValueError("a dataset reference names its dataset")
        return self


class MonitorConfig(_Strict):
    """One drift monitor."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: MonitorKind
    scope: DriftScope = Field(default_factory=DriftScope)
    reference: DriftReference = Field(default_factory=DriftReference)
    window: float = Field(
        default=DAY, ge=MINUTE, le=30 * DAY, description="the current window, in seconds"
    )
    every: float = Field(
        default=3600.0, ge=10, le=30 * DAY, description="seconds between evaluations"
    )
    alpha: float = Field(
        default=0.01, gt=0, lt=0.5, description="false-alarm rate per evaluation (state drift)"
    )
    warning_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="p-values under this (and over alpha): warning"
    )
    min_samples: int = Field(default=30, ge=2, description="per side; fewer: insufficient_data")
    max_samples: int = Field(
        default=500, ge=10, le=5000, description="per side; bigger windows are sampled"
    )
    metric: str | None = Field(default=None, description="quality: the feedback metric")
    statistics: list[StatName] = Field(
        default_factory=lambda: list(ALL_STATS), min_length=1, description="stats: which ones"
    )
    clusters: int = Field(default=8, ge=2, le=32, description="input: topic clusters")
    alert: bool = Field(default=True, description="alert when the monitor enters drift")
    proposal: ProposalKind = Field(
        default="dataset", description="what is proposed when the monitor enters drift"
    )

    seconds_fields = field_validator("window", "every", mode="before")(seconds)

    @model_validator(mode="after")
    def _consistent(self) -> MonitorConfig:
        if self.kind == "quality" and not self.metric:
            raise ValueError("a quality monitor names its metric")
        if self.reference.type == "dataset" and self.kind != "input":
            raise ValueError("a dataset reference is for input monitors only")
        if self.warning_alpha < self.alpha:
            raise ValueError("warning_alpha must be at least alpha")
        return self

    def reference_range(self, now: float) -> tuple[float, float]:
        """The reference's time range as of `now` (trailing or fixed)."""
        ref = self.reference
        if ref.type == "fixed" and ref.start is not None and ref.end is not None:
            return ref.start, ref.end
        end = now - self.window
        return end - (ref.window or 7 * self.window), end


class DriftConfig(_Strict):
    """Drift sampling (off the request path) and the monitors declared in the file."""

    enabled: bool = Field(default=True, description="sample traffic and run monitors")
    sample: float = Field(
        default=1.0, ge=0, le=1, description="share of chat traces whose features are kept"
    )
    embed_sample: float = Field(
        default=0.25, ge=0, le=1, description="share of the sampled prompts that are embedded"
    )
    embedder: EmbedderConfig | None = Field(
        default=None,
        description="default: the semantic cache's embedder when it is on, else local MiniLM",
    )
    queue_size: int = Field(default=10_000, ge=1, description="samples waiting to be written")
    interval: float = Field(default=30.0, gt=0, description="seconds between scheduler ticks")
    monitors: list[MonitorConfig] = Field(default_factory=list, max_length=256)

    @field_validator("monitors")
    @classmethod
    def _unique(cls, monitors: list[MonitorConfig]) -> list[MonitorConfig]:
        names = [m.name for m in monitors]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"monitor names must be unique; repeated: {', '.join(repeated)}")
        return monitors
