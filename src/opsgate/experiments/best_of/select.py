"""Run n candidates in parallel, score each with the policy's scorer, and pick the best.

The caller supplies `generate(index, request)` (the gateway's normal provider path); this module
knows nothing of the pipeline. Pointwise scorers score each candidate as soon as it answers, so
a time budget returns the best scored so far; a pairwise scorer (a judge comparing two answers,
in both orders) runs a knockout once the candidates are in. A scorer that raises or fails marks
its candidate failed (ranked below every scored one), never the request. Only when every
candidate failed to generate is the first candidate's error raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from opsgate.chat import ChatRequest, ChatResponse
from opsgate.errors import OpsgateError
from opsgate.evals.scorers import Pairwise, Sample, ScoreResult, apply
from opsgate.experiments.best_of.plan import BestOfPlan

Generate = Callable[[int, ChatRequest], Awaitable[ChatResponse]]


@dataclass(slots=True)
class Candidate:
    """One candidate's story, for the trace: `status` is `ok`, `error` (generation failed),
    `scorer_error` (answered, scoring failed) or `cancelled` (the time budget ran out)."""

    index: int
    model: str
    started: float
    seconds: float = 0.0
    status: str = "cancelled"
    response: ChatResponse | None = None
    error: OpsgateError | None = None
    score: ScoreResult | None = None

    @property
    def value(self) -> float | None:
        return self.score.value if self.score is not None else None


@dataclass(slots=True)
class Selection:
    candidates: list[Candidate]
    chosen: Candidate
    budget_expired: bool = False
    comparisons: list[ScoreResult] = field(default_factory=list)
    """Pairwise: every judged match (their judge calls are traced requests of their own)."""


def question_of(req: ChatRequest) -> str:
    """The last user message's text: what a judge is told the question was."""
    for message in reversed(req.messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
    return ""


async def safe_score(plan: BestOfPlan, sample: Sample) -> ScoreResult:
    """The scorer's result; an exception becomes a failed result naming it."""
    try:
        return await apply(plan.policy.scorer, sample)
    except Exception as exc:
        return ScoreResult.failure(f"scorer raised {type(exc).__name__}: {exc}")


async def select(plan: BestOfPlan, req: ChatRequest, generate: Generate) -> Selection:
    """Run the plan's candidates for `req` and return the selection (see the module doc)."""
    requests = plan.requests(req)
    question = question_of(req)
    pairwise = isinstance(plan.policy.scorer, Pairwise)
    candidates = [Candidate(i, r.model, time.time()) for i, r in enumerate(requests)]

    async def run(c: Candidate, request: ChatRequest) -> None:
        t0 = time.perf_counter()
        try:
            c.response = await generate(c.index, request)
        except OpsgateError as exc:
            c.error, c.status = exc, "error"
            return
        finally:
            c.seconds = time.perf_counter() - t0
        if not pairwise:
            c.score = await safe_score(plan, Sample(input=question, output=c.response.text))
        c.status = "scorer_error" if c.score is not None and c.score.failed else "ok"

    tasks = [asyncio.create_task(run(c, r)) for c, r in zip(candidates, requests, strict=True)]
    try:
        expired = await _wait(tasks, candidates, plan.policy.budget_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    answered = [c for c in candidates if _answered(c)]
    if not answered:
        first = next(c.error for c in candidates if c.error is not None)
        raise first
    if pairwise:
        chosen, matches = await _knockout(plan, question, answered)
        return Selection(candidates, chosen, expired, matches)
    return Selection(candidates, max(answered, key=_rank), expired)


def _rank(c: Candidate) -> tuple[float, int]:
    """Higher score first, a failed score below every real one, the lower index on a tie."""
    value = c.value
    return (value if value is not None else -1.0, -c.index)


async def _wait(
    tasks: Sequence[asyncio.Task[None]], candidates: Sequence[Candidate], budget: float | None
) -> bool:
    """Until every task is done, or the budget is spent and some candidate answered (with none
    answered yet, until the first one does). True when the budget cut candidates off."""
    pending = set(tasks)
    deadline = time.monotonic() + budget if budget is not None else None
    expired = False
    while pending:
        timeout = None if deadline is None or expired else max(0.0, deadline - time.monotonic())
        _, pending = await asyncio.wait(
            pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        expired = deadline is not None and time.monotonic() >= deadline
        if expired and pending and any(_answered(c) for c in candidates):
            return True
    return False


def _answered(c: Candidate) -> bool:
    """Answered and scored (or scoring failed): not cut off by the time budget."""
    return c.response is not None and c.status != "cancelled"


async def _knockout(
    plan: BestOfPlan, question: str, answered: Sequence[Candidate]
) -> tuple[Candidate, list[ScoreResult]]:
    """The champion meets each challenger; a challenger the judge prefers in both orders
    takes over. A failed comparison keeps the champion."""
    scorer = plan.policy.scorer
    assert isinstance(scorer, Pairwise)
    champion, matches = answered[0], []
    for challenger in answered[1:]:
        assert champion.response is not None and challenger.response is not None
        try:
            result = await scorer.compare(
                question, challenger.response.text, champion.response.text
            )
        except Exception as exc:
            result = ScoreResult.failure(f"scorer raised {type(exc).__name__}: {exc}")
        matches.append(result)
        challenger.score = result
        if result.failed:
            challenger.status = "scorer_error"
        elif result.value == 1.0:
            champion = challenger
    return champion, matches
