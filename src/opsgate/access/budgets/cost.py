"""The worst case a request can cost, known before it is routed: what a budget reserves.

Output tokens are bounded by the request's `max_tokens` (`max_completion_tokens`), else the
deployment's `max_tokens_cap`, else a default (4096), times `n`; prompt tokens are counted
locally. The price is the dearest deployment that may serve it (its model group and that
group's fallbacks), so a fallback never costs more than was reserved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opsgate.accounting import cost_micros, count_embedding_tokens, count_prompt_tokens
from opsgate.chat import ChatRequest, EmbeddingRequest, Usage
from opsgate.config.schema import Price
from opsgate.routing.deployment import Deployment
from opsgate.routing.router import Router

DEFAULT_MAX_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class CostBound:
    prompt_tokens: int
    output_tokens: int
    """The most the reply may have, all choices together."""
    prompt_micros: int
    """What the prompt alone costs at the dearest candidate (a stream's minimum hold)."""
    micros: int
    """The worst case: prompt plus every allowed output token."""

    @property
    def tokens(self) -> int:
        """The token estimate a TPM limit charges up front."""
        return self.prompt_tokens + self.output_tokens


def worst_case_micros(prompt_tokens: int, output_tokens: int, price: Price | None) -> int:
    """The cost of `prompt_tokens` in and `output_tokens` out at `price` (micro-dollars)."""
    return cost_micros(Usage(prompt_tokens, output_tokens), price)


def output_bound(req: ChatRequest, dep: Deployment | None, default: int) -> int:
    """The most output tokens `dep` may return for `req` (all `n` choices)."""
    cap = dep.config.max_tokens_cap if dep is not None else None
    asked = req.max_tokens if req.max_tokens is not None and req.max_tokens > 0 else None
    if asked is None:
        return (cap or default) * req.n
    return (min(asked, cap) if cap is not None else asked) * req.n


class WorstCase:
    """Prices requests' worst cases against the router's deployments (rebuild on reload)."""

    def __init__(self, router: Router, *, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        self.router = router
        self.default_max_tokens = default_max_tokens

    def candidates(self, model: str) -> Sequence[Deployment]:
        groups = self.router.groups
        names = [model, *self.router.config.fallbacks.get(model, ())]
        return [d for name in names if name in groups for d in groups[name].deployments]

    def chat(self, req: ChatRequest) -> CostBound:
        prompt = count_prompt_tokens(req.messages, tools=req.params.get("tools"))
        deps = self.candidates(req.model)
        if not deps:
            out = output_bound(req, None, self.default_max_tokens)
            return CostBound(prompt, out, 0, 0)
        out = max(output_bound(req, d, self.default_max_tokens) for d in deps)
        worst = max(
            worst_case_micros(prompt, output_bound(req, d, self.default_max_tokens), d.price)
            for d in deps
        )
        prompt_cost = max(worst_case_micros(prompt, 0, d.price) for d in deps)
        return CostBound(prompt, out, prompt_cost, worst)

    def embedding(self, req: EmbeddingRequest) -> CostBound:
        tokens = count_embedding_tokens(req.inputs)
        deps = self.candidates(req.model)
        worst = max((worst_case_micros(tokens, 0, d.price) for d in deps), default=0)
        return CostBound(tokens, 0, worst, worst)
