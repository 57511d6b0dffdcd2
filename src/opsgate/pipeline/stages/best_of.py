"""Best-of-n re-ranking (experiments/best_of/) in the request path, as two stages.

`PlanBestOf` sits before Admit: it reads `x-opsgate-best-of` and the model's `best_of_n`, says
no (400) to a bad or too large n, and leaves the plan on the context so that Admit holds the
worst case of all n candidate calls. `BestOfN` sits right outside Settle: each candidate runs
Settle and the router on a context of its own (its own route state, usage and cost), all of
them are added up onto the request's context (every candidate is paid for and budgeted), each
becomes a span of the trace, and the chosen answer goes on through the output guard and the
cache like any answer. A stream is answered after selection: the chosen answer is replayed as
chunks, so its first token waits for the whole selection (docs/experiments.md).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from opsgate.cache.answer import CachedAnswer, replay_chunks
from opsgate.chat import ChatChunk, ChatRequest, ChatResponse, Usage
from opsgate.config.schema import Config
from opsgate.evals.client import ChatClient
from opsgate.evals.scorers import ScorerResources
from opsgate.experiments.best_of import (
    HEADER,
    JUDGE_SOURCE,
    BestOfPolicy,
    Candidate,
    Selection,
    build_policies,
    plan_for,
    select,
)
from opsgate.pipeline.context import ChatCall, ChatResult, RequestContext
from opsgate.pipeline.pipeline import Next
from opsgate.trace import SpanRecord
from opsgate.types import JSONObject

CHOSEN_HEADER = "x-opsgate-best-of-chosen"


class PlanBestOf:
    def __init__(self, policies: Mapping[str, BestOfPolicy]) -> None:
        self.policies = policies

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx = call.ctx
        if ctx.labels.metadata.get("source") != JUDGE_SOURCE:
            ctx.best_of = plan_for(self.policies, call.request, ctx.headers.get(HEADER))
        return await call_next(call)


class BestOfN:
    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx, plan = call.ctx, call.ctx.best_of
        if plan is None:
            return await call_next(call)
        children: dict[int, RequestContext] = {}

        async def generate(index: int, request: ChatRequest) -> ChatResponse:
            child = children[index] = _child(ctx)
            answer = await call_next(ChatCall(child, request))
            assert isinstance(answer, ChatResponse)  # candidates are never streamed
            return answer

        started, t0 = time.time(), time.perf_counter()
        try:
            selection = await select(plan, call.request, generate)
        finally:
            _add_up(ctx, children)
        chosen = selection.chosen
        ctx.route.deployment = children[chosen.index].route.deployment
        _record(ctx, selection, children, started, t0)
        assert chosen.response is not None
        if ctx.output is not None:
            ctx.output.append(chosen.response.text)
        body = _answer_body(chosen.response.body, ctx)
        if not call.request.stream:
            return ChatResponse(body)
        return _replay(body, ctx.trace_id, include_usage=call.request.include_usage)


def _child(ctx: RequestContext) -> RequestContext:
    """A candidate's own context: the request's caller and routing limits, nothing else."""
    child = RequestContext(headers=ctx.headers, trace_id=ctx.trace_id, started=ctx.started)
    child.principal, child.labels, child.sensitive = ctx.principal, ctx.labels, ctx.sensitive
    route, parent = child.route, ctx.route
    route.timeout, route.allow, route.require_tags = (
        parent.timeout,
        parent.allow,
        parent.require_tags,
    )
    route.extra_headers = dict(parent.extra_headers)
    return child


def _add_up(ctx: RequestContext, children: Mapping[int, RequestContext]) -> None:
    """Every candidate's tokens, cost and upstream attempts onto the request's context."""
    usage = Usage()
    for child in children.values():
        if child.usage is not None:
            usage.prompt_tokens += child.usage.prompt_tokens
            usage.completion_tokens += child.usage.completion_tokens
            usage.cached_tokens += child.usage.cached_tokens
        ctx.cost_micros += child.cost_micros
        ctx.usage_estimated = ctx.usage_estimated or child.usage_estimated
        ctx.route.attempts.extend(child.route.attempts)
    ctx.usage = usage


def _answer_body(body: JSONObject, ctx: RequestContext) -> JSONObject:
    """The chosen body, its usage replaced by all candidates' together (what was paid for)."""
    out = dict(body)
    if ctx.usage is not None:
        out["usage"] = ctx.usage.to_openai()
    return out


def _record(
    ctx: RequestContext,
    selection: Selection,
    children: Mapping[int, RequestContext],
    started: float,
    t0: float,
) -> None:
    chosen = selection.chosen
    n = len(selection.candidates)
    ctx.response_headers[HEADER] = str(n)
    ctx.response_headers[CHOSEN_HEADER] = str(chosen.index)
    for c in selection.candidates:
        child = children.get(c.index)
        ctx.spans.append(_span(ctx, c, child, chosen=c is chosen))
    scorer = ctx.best_of.policy.scorer if ctx.best_of is not None else None
    attributes: dict[str, object] = {
        "n": n,
        "chosen": chosen.index,
        "scorer": scorer.name if scorer is not None else None,
        "budget_expired": selection.budget_expired,
        "cost_micros": ctx.cost_micros,
    }
    if selection.comparisons:
        attributes["comparisons"] = len(selection.comparisons)
        attributes["judge_cost_micros"] = sum(m.cost_micros for m in selection.comparisons)
    ctx.add_span("bofn", "best_of", started, t0, attributes=attributes)


def _span(
    ctx: RequestContext, c: Candidate, child: RequestContext | None, *, chosen: bool
) -> SpanRecord:
    attributes: dict[str, object] = {"candidate": c.index, "model": c.model, "chosen": chosen}
    if child is not None:
        dep = child.route.deployment
        attributes["deployment"] = dep.id if dep is not None else None
        attributes["cost_micros"] = child.cost_micros
        attributes["tokens"] = child.usage.total_tokens if child.usage is not None else 0
    if c.score is not None:
        attributes["score"] = c.score.value
        attributes["reason"] = c.score.error or c.score.reason
        attributes["scorer_cost_micros"] = c.score.cost_micros
    if c.error is not None:
        attributes["error"] = c.error.code
        attributes["message"] = c.error.message
    return SpanRecord(
        span_id=f"{ctx.trace_id[:12]}n{c.index:03d}",
        trace_id=ctx.trace_id,
        name="best_of_candidate",
        started_at=c.started,
        duration_ms=c.seconds * 1000,
        status="ok" if c.status == "ok" else "error",
        parent_id=f"{ctx.trace_id[:12]}bofn",
        attributes=attributes,
    )


async def _replay(
    body: JSONObject, trace_id: str, *, include_usage: bool
) -> AsyncIterator[ChatChunk]:
    chunks = replay_chunks(CachedAnswer(body), f"chatcmpl-{trace_id}", include_usage=include_usage)
    for chunk in chunks:
        yield ChatChunk(chunk)


def best_of_stages(
    config: Config, judge: ChatClient | None, *, source: str = "<config>"
) -> tuple[PlanBestOf, list[BestOfN]]:
    """The planning stage (always: a header on a model without `best_of_n` is a 400) and the
    running stage (only when some model has `best_of_n`). Judge scorers call `judge` (the
    gateway's own chat pipeline) with `evals.judge_model` as their default model."""
    resources = ScorerResources(client=judge, judge_model=config.evals.judge_model)
    groups = {m.name: m.best_of_n for m in config.models}
    policies = build_policies(groups, resources, source=source)
    return PlanBestOf(policies), [BestOfN()] if policies else []
