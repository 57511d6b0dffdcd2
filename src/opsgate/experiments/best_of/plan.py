"""Which requests are re-ranked, and how: a model group's `best_of_n` policy (its scorer built
once per runtime) and one request's plan (its n, from `x-opsgate-best-of` or the policy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opsgate.chat import ChatRequest
from opsgate.config.best_of import BestOfNConfig, BestOfVariant
from opsgate.config.loader import ConfigError
from opsgate.errors import BadRequestError
from opsgate.evals.scorers import Scorer, ScorerConfigError, ScorerResources, build_scorer

HEADER = "x-opsgate-best-of"
JUDGE_SOURCE = "best_of_judge"
"""The `source` metadata of judge calls made for a selection; those are never re-ranked (a
judge model with its own `best_of_n` would otherwise call itself without end)."""
_DROPPED = ("stream_options",)
"""Request fields that only make sense for the stream the client asked for, not a candidate."""


@dataclass(frozen=True, slots=True)
class BestOfPolicy:
    """A model group's `best_of_n` with its scorer built."""

    model: str
    config: BestOfNConfig
    scorer: Scorer

    @property
    def budget_s(self) -> float | None:
        ms = self.config.time_budget_ms
        return ms / 1000 if ms is not None else None


@dataclass(frozen=True, slots=True)
class BestOfPlan:
    """What one request runs: `n` candidates under `policy`."""

    policy: BestOfPolicy
    n: int

    def requests(self, req: ChatRequest) -> list[ChatRequest]:
        """The n candidate requests for `req` (as it reaches the router): never streamed,
        candidate i with `variants[i % len(variants)]` applied."""
        variants: Sequence[BestOfVariant] = self.policy.config.variants or (BestOfVariant(),)
        base = {k: v for k, v in req.params.items() if k not in _DROPPED}
        out = []
        for i in range(self.n):
            variant = variants[i % len(variants)]
            out.append(
                ChatRequest(
                    model=variant.model or req.model,
                    messages=req.messages,
                    stream=False,
                    params={**base, **variant.params},
                )
            )
        return out


def build_policies(
    groups: Mapping[str, BestOfNConfig | None],
    resources: ScorerResources,
    *,
    source: str = "<config>",
) -> dict[str, BestOfPolicy]:
    """Each configured group's policy; scorer specs the registry refuses are a ConfigError
    naming each model (start-up and reload stop on it, as on a bad provider setting)."""
    policies, problems = {}, []
    for model, config in groups.items():
        if config is None:
            continue
        try:
            scorer = build_scorer(config.scorer, resources)
        except ScorerConfigError as exc:
            problems.append(f"models[{model}].best_of_n.scorer: {exc}")
            continue
        policies[model] = BestOfPolicy(model, config, scorer)
    if problems:
        raise ConfigError(source, problems)
    return policies


def plan_for(
    policies: Mapping[str, BestOfPolicy], req: ChatRequest, header: str | None
) -> BestOfPlan | None:
    """The plan for a request to `req.model` carrying `header` (or None: served as usual).
    BadRequestError (400) for a bad header, an n above the model's `max_n`, a model without
    `best_of_n`, or `n` choices asked together with best-of."""
    policy = policies.get(req.model)
    n = policy.config.n if policy is not None else 1
    if header is not None:
        n = _parse(header)
        if n > 1 and policy is None:
            raise BadRequestError(
                f"model `{req.model}` has no best_of_n scorer configured",
                code="best_of_unavailable",
                param=HEADER,
            )
        if policy is not None and n > policy.config.max_n:
            raise BadRequestError(
                f"{HEADER}: {n} is above this model's limit of {policy.config.max_n}",
                code="best_of_too_large",
                param=HEADER,
            )
    if policy is None or n <= 1:
        return None
    if req.n > 1:
        raise BadRequestError(
            "best-of-n returns one answer; it cannot be combined with `n` > 1",
            code="best_of_with_n",
            param="n",
        )
    return BestOfPlan(policy, n)


def _parse(header: str) -> int:
    try:
        n = int(header.strip())
    except ValueError:
        n = 0
    if n < 1:
        raise BadRequestError(
            f"header {HEADER} must be a positive whole number", code="invalid_header", param=HEADER
        )
    return n
