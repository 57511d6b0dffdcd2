"""The `experiments:` section of the config file (and the body of `POST /admin/v1/experiments`).

An experiment splits one stream of traffic (a model name, or a prompt name and label) between
variants, sticks each unit (end user, session, key or request) to one variant by a hash, and
judges the variants by one declared feedback metric, with guardrails on cost, latency and
errors. docs/experiments.md explains the fields and the statistics.

```yaml
experiments:
  - name: triage-v7
    traffic: {prompt: support-triage, label: production}
    unit: end_user
    variants:
      - {name: v6, prompt_version: 6}                 # the first variant is the control
      - {name: v7, prompt_version: 7}
    metric: thumbs                                    # a declared boolean or float metric
    guardrails: {cost_increase: 0.10, p95_latency_ms: 200, error_rate_increase: 0.02}
    auto_promote: true
```

`check_experiments` holds the rules that need more than one experiment (overlaps, exclusion
group shares) or the rest of the config (declared metrics, known models); the config schema and
the admin API both call it, so a file and an API call are refused for the same reasons.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsgate.config.feedback import MetricConfig

EXPERIMENT_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
VARIANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"
MAX_VARIANTS = 8
WEIGHT_TOLERANCE = 1e-6

Unit = Literal["end_user", "session", "key", "request"]
Allocation = Literal["fixed", "thompson"]
Missing = Literal["skip", "zero"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrafficConfig(_Strict):
    """Which requests an experiment sees: those asking for `model`, or those naming prompt
    `prompt` by `label` (`model: "prompt:support-triage@production"`)."""

    model: str | None = Field(default=None, min_length=1)
    prompt: str | None = Field(default=None, min_length=1)
    label: str = Field(default="production", min_length=1)
    team_id: str = Field(default="", description="the prompt's team ('' for prompts of no team)")

    @model_validator(mode="after")
    def _one_target(self) -> TrafficConfig:
        if (self.model is None) == (self.prompt is None):
            raise ValueError("traffic names exactly one of `model` or `prompt`")
        return self

    @property
    def key(self) -> str:
        """What two experiments overlap on: the same key."""
        if self.prompt is not None:
            return f"prompt:{self.team_id}/{self.prompt}@{self.label}"
        return f"model:{self.model}"


class VariantConfig(_Strict):
    """One arm: a prompt version, a model, parameters, or a combination."""

    name: str = Field(pattern=VARIANT_NAME)
    prompt_version: int | None = Field(default=None, ge=1)
    model: str | None = Field(default=None, min_length=1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="request fields set for this variant (temperature...)"
    )
    weight: float | None = Field(default=None, ge=0, le=1)

    @field_validator("params")
    @classmethod
    def _plain_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted({"model", "messages", "stream", "prompt", "variables"} & set(params))
        if reserved:
            raise ValueError(f"params may not set {reserved[0]!r}")
        return params


class MetricRef(_Strict):
    """The primary metric: a declared feedback metric (any source, online scores included)."""

    name: str = Field(min_length=1)
    missing: Missing = Field(
        default="skip",
        description="a unit without a score: skip (missing, the default) or zero (no thumbs "
        "up counts as not satisfied)",
    )
    source: str | None = Field(default=None, description="only scores from this source")


class GuardrailsConfig(_Strict):
    """Harm a variant may not do compared with the control; each is tested one-sided."""

    cost_increase: float | None = Field(
        default=0.10, ge=0, description="relative rise in mean cost per request (0.10 = 10%)"
    )
    p95_latency_ms: float | None = Field(
        default=None, ge=0, description="milliseconds the p95 latency may rise"
    )
    error_rate_increase: float | None = Field(
        default=0.02, ge=0, le=1, description="absolute rise in the error rate (0.02 = 2 points)"
    )


class ExperimentConfig(_Strict):
    name: str = Field(pattern=EXPERIMENT_NAME)
    description: str | None = Field(default=None, max_length=2000)
    traffic: TrafficConfig
    unit: Unit = "end_user"
    variants: list[VariantConfig] = Field(min_length=2, max_length=MAX_VARIANTS)
    control: str | None = Field(default=None, description="default: the first variant")
    metric: MetricRef
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    allocation: Allocation = "fixed"
    floor: float = Field(
        default=0.05, ge=0, le=0.5, description="thompson: the least share of each variant"
    )
    share: float = Field(default=1.0, gt=0, le=1, description="share of units that enter")
    exclusion_group: str | None = Field(default=None, pattern=EXPERIMENT_NAME)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_units: int = Field(default=100, ge=2, description="per variant, before any decision")
    max_units: int | None = Field(
        default=None, ge=2, description="per variant: past it without a winner, no difference"
    )
    min_effect: float | None = Field(
        default=None,
        gt=0,
        description="the smallest difference worth finding (metric units); sets the test's "
        "mixture scale and the no-difference margin (default: 0.05 for boolean metrics, "
        "a tenth of the pooled standard deviation for float ones)",
    )
    auto_promote: bool = False
    promote_label: str = Field(default="production", min_length=1)
    salt: str | None = Field(default=None, max_length=128, description="default: the name")

    @field_validator("metric", mode="before")
    @classmethod
    def _metric_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_variants(self) -> ExperimentConfig:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not a variant")
        weights = [v.weight for v in self.variants]
        given = [w for w in weights if w is not None]
        if given and len(given) != len(weights):
            raise ValueError("give every variant a weight, or none (an equal split)")
        if given and abs(sum(given) - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"variant weights must sum to 1 (they sum to {sum(given):g})")
        if given and self.allocation == "thompson":
            raise ValueError("thompson allocation sets the weights itself; give none")
        if self.allocation == "thompson" and self.floor * len(self.variants) > 1:
            raise ValueError("floor times the number of variants must not exceed 1")
        for v in self.variants:
            if v.prompt_version is not None and self.traffic.prompt is None:
                raise ValueError(f"variant {v.name!r}: prompt_version needs prompt traffic")
        if self.max_units is not None and self.max_units < self.min_units:
            raise ValueError("max_units must not be below min_units")
        return self

    @property
    def control_name(self) -> str:
        return self.control or self.variants[0].name

    @property
    def salt_text(self) -> str:
        return self.salt or self.name

    def weights(self) -> list[float]:
        """The fixed split (equal when no weights are given)."""
        if self.variants[0].weight is None:
            return [1.0 / len(self.variants)] * len(self.variants)
        return [float(v.weight or 0.0) for v in self.variants]

    def variant(self, name: str) -> VariantConfig | None:
        return next((v for v in self.variants if v.name == name), None)


class ExperimentError(ValueError):
    """A rule across experiments or the config is broken; `field` names where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_experiment(
    exp: ExperimentConfig,
    *,
    metrics: Mapping[str, MetricConfig],
    models: Collection[str],
) -> None:
    """The experiment's metric is a declared boolean or float metric, its models are known."""
    found = metrics.get(exp.metric.name)
    if found is None:
        raise ExperimentError(
            "metric", f"unknown metric {exp.metric.name!r}: declare it in feedback.metrics"
        )
    if found.type not in ("boolean", "float"):
        raise ExperimentError(
            "metric", f"metric {exp.metric.name!r} is a {found.type}; a boolean or float is needed"
        )
    if exp.traffic.model is not None and exp.traffic.model not in models:
        raise ExperimentError("traffic.model", f"unknown model {exp.traffic.model!r}")
    for i, v in enumerate(exp.variants):
        if v.model is not None and v.model not in models:
            raise ExperimentError(f"variants[{i}].model", f"unknown model {v.model!r}")


def check_experiments(experiments: Sequence[ExperimentConfig]) -> None:
    """Names are unique; two experiments on the same traffic share an exclusion group (so a
    unit is in at most one of them); a group's shares sum to at most 1."""
    seen: dict[str, ExperimentConfig] = {}
    for exp in experiments:
        if exp.name in seen:
            raise ExperimentError("name", f"experiment {exp.name!r} is defined twice")
        seen[exp.name] = exp
    by_traffic: dict[str, list[ExperimentConfig]] = {}
    for exp in experiments:
        by_traffic.setdefault(exp.traffic.key, []).append(exp)
    for same in by_traffic.values():
        for a, b in itertools.pairwise(same):
            if a.exclusion_group is None or a.exclusion_group != b.exclusion_group:
                raise ExperimentError(
                    "exclusion_group",
                    f"experiments {a.name!r} and {b.name!r} overlap on the same traffic; put "
                    "them in one exclusion_group",
                )
    groups: dict[str, float] = {}
    for exp in experiments:
        if exp.exclusion_group is not None:
            groups[exp.exclusion_group] = groups.get(exp.exclusion_group, 0.0) + exp.share
    for group, total in groups.items():
        if total > 1 + WEIGHT_TOLERANCE:
            raise ExperimentError(
                "share", f"exclusion group {group!r}: shares sum to {total:g}, above 1"
            )
