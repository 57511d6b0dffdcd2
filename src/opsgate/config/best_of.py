"""`models[].best_of_n`: ask for several candidates and return the one a scorer likes best.

```yaml
models:
  - name: extractor
    deployments: [...]
    best_of_n:
      n: 3                         # candidates per request (x-opsgate-best-of overrides it)
      max_n: 5                     # the most a request may ask for; above it is a 400
      scorer: json                 # any scorer spec of the evaluations (docs/evals.md)
      variants:                    # optional: candidate i uses variants[i % len(variants)]
        - {params: {temperature: 0.2}}
        - {model: extractor-large}
      time_budget_ms: 3000         # return the best candidate scored by then
```

The scorer spec is checked against the scorer registry when the runtime is built (the
evaluations part sits above config); docs/experiments.md explains the rest.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_CANDIDATES = 16
"""The hard ceiling on `max_n`: more parallel calls per request than this is never useful."""


class BestOfVariant(BaseModel):
    """What one candidate changes: the model it asks (a model group) and request parameters
    merged over the client's (`temperature`, `top_p`, `seed`, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_params(self) -> BestOfVariant:
        reserved = sorted({"model", "messages", "stream", "n"} & set(self.params))
        if reserved:
            raise ValueError(f"params may not set {', '.join(reserved)}")
        return self


class BestOfNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=1, ge=1, le=MAX_CANDIDATES, description="candidates per request")
    max_n: int = Field(
        default=5, ge=1, le=MAX_CANDIDATES, description="the most x-opsgate-best-of may ask"
    )
    scorer: str | dict[str, Any] = Field(description="a scorer spec (docs/evals.md)")
    variants: list[BestOfVariant] = Field(default_factory=list, max_length=MAX_CANDIDATES)
    time_budget_ms: int | None = Field(
        default=None, gt=0, description="return the best candidate scored by then"
    )

    @model_validator(mode="after")
    def _check_n(self) -> BestOfNConfig:
        if self.n > self.max_n:
            raise ValueError(f"n ({self.n}) is above max_n ({self.max_n})")
        return self
