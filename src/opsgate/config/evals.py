"""The `evals:` section of the config file: online scoring of live traffic.

A rule samples a share of one model's successful chat answers when their traces are published
and scores them in the background, never on the request path; each scorer writes the declared
feedback metric of its name with source `online` (docs/evals.md, "Online evaluation").

```yaml
evals:
  online:
    - {model: support-bot, sample: 0.05, scorers: [faithfulness, hallucination]}
  judge_model: gpt-4o-mini          # the default model of judge scorers
  online_usd_per_hour: 1.0          # judge calls stop for the rest of the hour past this
```
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ScorerSpec = str | dict[str, Any]


def scorer_metric(spec: ScorerSpec) -> str:
    """The metric a scorer spec writes: its `name`, else a judge's template (without the
    version), else its type (a bare string is its own name)."""
    if isinstance(spec, str):
        return spec.split("@", 1)[0]
    name = spec.get("name") or spec.get("template") or spec.get("type")
    return str(name).split("@", 1)[0]


class OnlineRule(_Strict):
    """Score a share of one model's traffic with some scorers."""

    model: str = Field(
        min_length=1,
        description="a public model name as clients ask for it, or a glob (`support-*`)",
    )
    sample: float = Field(gt=0, le=1, description="the share of answers scored (0.05 = 5%)")
    scorers: list[ScorerSpec] = Field(
        min_length=1,
        max_length=16,
        description="scorer specs as in eval files (`hallucination`, `faithfulness`, "
        "`{type: judge, template: relevance}`); each writes the metric of its name",
    )
    judge_model: str | None = Field(
        default=None,
        description="the model of this rule's judge scorers (default: evals.judge_model)",
    )

    @field_validator("scorers")
    @classmethod
    def _distinct_metrics(cls, scorers: list[ScorerSpec]) -> list[ScorerSpec]:
        for spec in scorers:
            if not isinstance(spec, str) and not isinstance(spec.get("type"), str):
                raise ValueError("a scorer is a type name or a mapping with a `type`")
        names = [scorer_metric(s) for s in scorers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"two scorers write metric {repeated[0]!r}: give one a `name`")
        return scorers

    @property
    def metrics(self) -> list[str]:
        return [scorer_metric(s) for s in self.scorers]


class EvalsConfig(_Strict):
    """Online evaluation: rules, the judge, and the limits of the background scorer."""

    online: list[OnlineRule] = Field(default_factory=list, max_length=64)
    judge_model: str | None = Field(default=None, description="the default model of judge scorers")
    judge_key: SecretStr | None = Field(
        default=None,
        description="a virtual key judge calls run as (its budgets and allowed models apply); "
        "default: the gateway itself (the master principal)",
    )
    online_usd_per_hour: float = Field(
        default=1.0,
        ge=0,
        description="judge spend per clock hour (UTC); past it, judge scorers are skipped "
        "until the next hour (local scorers go on)",
    )
    online_queue_size: int = Field(
        default=1000, ge=1, description="sampled answers waiting to be scored; beyond, dropped"
    )
    online_concurrency: int = Field(
        default=4, ge=1, le=64, description="sampled answers scored at the same time"
    )
    online_window: float = Field(
        default=900.0,
        gt=0,
        description="seconds of online scores the Prometheus gauges average over",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.online)
