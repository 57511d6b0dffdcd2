"""Admit: rate limits and budget reservation, right after Authenticate.

On the way in it charges the caller's key, team and end-user scopes (one all-or-nothing call
to the limiter) and holds the request's worst-case cost in their budgets (one call to the
ledger); either refusal is a 429 naming the limit. On the way out, once Settle (inside this
stage) knows the real tokens and cost, it corrects the token charge, swaps the hold for the
real cost and frees the parallel slot: also on errors and client disconnects.

A stream is metered as it flows (tokens estimated from its text): when its cost passes the
hold and the budget cannot extend it, the stream stops before the chunk that would overspend
and ends with a `budget_exceeded` error event. The upstream already produced that chunk, so
spend can pass the budget by at most one chunk per stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from opsgate.access.budgets.cost import CostBound, WorstCase
from opsgate.access.budgets.model import (
    BudgetLedger,
    BudgetScope,
    Reservation,
    StreamBudgetExceededError,
    budget_scopes,
    check_fits,
)
from opsgate.access.gate import Admission, gate_for
from opsgate.access.limits.model import LimitScope, RateLimiter, limit_scopes
from opsgate.accounting import cost_micros, count_text_tokens
from opsgate.chat import ChatChunk, ChatRequest, Usage
from opsgate.errors import OpsgateError, ServiceUnavailableError
from opsgate.pipeline.context import RequestContext
from opsgate.pipeline.pipeline import Next

log = logging.getLogger("opsgate.access")


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds until it finishes."""

    admission: Admission
    bound: CostBound | None

    @property
    def reservation(self) -> Reservation | None:
        return self.admission.reservation


class Admit:
    """The admission stage; `limiter` and `ledger` may each be None (not configured)."""

    def __init__(
        self,
        *,
        limiter: RateLimiter | None,
        ledger: BudgetLedger | None,
        pricer: WorstCase,
        fail_open: bool = True,
    ) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self.gate = gate_for(limiter, ledger)
        self.pricer = pricer
        self.fail_open = fail_open
        """When Redis is unreachable: serve unlimited (True) or refuse with 503 (False)."""
        self._finishing: set[asyncio.Task[None]] = set()

    async def __call__(self, call: Any, call_next: Next[Any, Any]) -> Any:
        ctx: RequestContext = call.ctx
        principal = ctx.principal
        if principal is None:
            return await call_next(call)
        user = ctx.labels.end_user
        limits = limit_scopes(principal, user) if self.limiter is not None else []
        budgets = budget_scopes(principal, user, ctx.started) if self.ledger is not None else []
        if not limits and not budgets:
            return await call_next(call)
        ticket = await self._admit(call, limits, budgets)
        try:
            result = await call_next(call)
        except BaseException:
            await self._finish_shielded(ticket, ctx)
            raise
        if isinstance(result, AsyncIterator):
            return self._watch(result, ticket, ctx)
        await self._finish(ticket, ctx)
        return result

    async def _admit(
        self, call: Any, limits: list[LimitScope], budgets: list[BudgetScope]
    ) -> Ticket:
        req = call.request
        chat = isinstance(req, ChatRequest)
        bound: CostBound | None = None
        if budgets or any(s.limits.tpm is not None for s in limits):
            bound = self._price(call) if chat else self.pricer.embedding(req)
        tokens, micros = (bound.tokens, bound.micros) if bound is not None else (0, 0)
        minimum = _stream_minimum(bound) if bound is not None and chat and req.stream else None
        if bound is not None and budgets:
            check_fits(budgets, *_least(bound, minimum))
        try:
            admission = await self.gate.admit(
                limits, tokens, budgets, micros, minimum, at=call.ctx.started
            )
        except OpsgateError:
            raise
        except Exception as exc:
            return self._backend_down(exc, Ticket(Admission(), bound))
        if admission.permit is not None:
            call.ctx.response_headers.update(admission.permit.status.headers())
        return Ticket(admission, bound)

    def _price(self, call: Any) -> CostBound:
        """A chat request's worst case; with best-of-n, that of every candidate call."""
        plan = call.ctx.best_of
        if plan is None:
            return self.pricer.chat(call.request)
        bounds = [self.pricer.chat(r) for r in plan.requests(call.request)]
        return CostBound(
            prompt_tokens=sum(b.prompt_tokens for b in bounds),
            output_tokens=sum(b.output_tokens for b in bounds),
            prompt_micros=sum(b.prompt_micros for b in bounds),
            micros=sum(b.micros for b in bounds),
        )

    def _backend_down(self, exc: Exception, ticket: Ticket) -> Ticket:
        log.warning("rate limit / budget backend failed (%s: %s)", type(exc).__name__, exc)
        if not self.fail_open:
            raise ServiceUnavailableError(
                "rate limits and budgets cannot be checked right now; try again",
                code="limits_unavailable",
            ) from None
        return ticket

    async def _watch(
        self, chunks: AsyncIterator[ChatChunk], ticket: Ticket, ctx: RequestContext
    ) -> AsyncIterator[ChatChunk]:
        meter = _Meter(ticket, ctx) if _metered(ticket) else None
        try:
            async for chunk in chunks:
                if meter is not None and meter.add(chunk):
                    await self._extend_or_cut(meter)
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()  # Settle (inside) fills ctx.usage and ctx.cost_micros here
            await self._finish(ticket, ctx)

    async def _extend_or_cut(self, meter: _Meter) -> None:
        res, bound = meter.reservation, meter.bound
        assert self.ledger is not None
        needed = meter.cost - res.amount
        for more in (max(needed, bound.micros - bound.prompt_micros), needed):
            try:
                if await self.ledger.extend(res, more):
                    return
            except Exception as exc:
                if self.fail_open:
                    log.warning("budget extension failed, stream goes on: %s", exc)
                    return
        index = 0
        if len(res.scopes) > 1:  # name the scope that ran out (a look-up on this path only)
            try:
                left = [(await self.ledger.status(s)).remaining for s in res.scopes]
                index = left.index(min(left))
            except Exception as exc:
                log.warning("could not tell which budget ran out: %s", exc)
        raise StreamBudgetExceededError(res.scopes[index], res.periods[index], meter.cost)

    async def _finish(self, ticket: Ticket, ctx: RequestContext) -> None:
        tokens = ctx.usage.total_tokens if ctx.usage is not None else 0
        await self._quietly(self.gate.finish(ticket.admission, tokens, ctx.cost_micros))

    async def _finish_shielded(self, ticket: Ticket, ctx: RequestContext) -> None:
        """Release even when the request's task is being cancelled (client went away)."""
        task = asyncio.get_running_loop().create_task(self._finish(ticket, ctx))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        await asyncio.shield(task)

    @staticmethod
    async def _quietly(step: Any) -> None:
        try:
            await step
        except Exception as exc:  # the answer is already made; leases expire on their own
            log.warning("could not release limits/budget (%s: %s)", type(exc).__name__, exc)

    async def aclose(self) -> None:
        """Wait for releases still running (graceful shutdown)."""
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)


def _least(bound: CostBound, minimum: int | None) -> tuple[int, str]:
    """What a request needs held to be admitted, and those words for an error message."""
    if minimum is not None:
        return minimum, "needs at least {cost} to start (its prompt and one output token)"
    return (
        bound.micros,
        f"may cost up to {{cost}} (with up to {bound.output_tokens:,} output tokens)",
    )


def _stream_minimum(bound: CostBound) -> int:
    """A stream may start on less than its worst case: its prompt and one output token."""
    per_token = (bound.micros - bound.prompt_micros) // max(1, bound.output_tokens)
    return bound.prompt_micros + max(1, per_token)


def _metered(ticket: Ticket) -> bool:
    res = ticket.reservation
    return res is not None and bool(res.scopes) and ticket.bound is not None


class _Meter:
    """A stream's running cost at the serving deployment's price, from its text.

    Counting each chunk alone would split words a tokenizer keeps whole (`"word "` is two
    tokens, `" word"` one), so text is counted up to its last space and the rest carried to
    the next chunk: the running count then matches counting the whole text.
    """

    MAX_TAIL = 256

    def __init__(self, ticket: Ticket, ctx: RequestContext) -> None:
        assert ticket.reservation is not None and ticket.bound is not None
        self.reservation, self.bound, self.ctx = ticket.reservation, ticket.bound, ctx
        self.counted = 0
        self.tail = ""
        self.cost = 0

    def add(self, chunk: ChatChunk) -> bool:
        """Count the chunk; True when the cost is now beyond the hold."""
        text = chunk.text
        dep = self.ctx.route.deployment
        if not text or dep is None:
            return False
        text = self.tail + text
        cut = max(text.rfind(" "), text.rfind("\n"))
        if cut <= 0 and len(text) > self.MAX_TAIL:
            cut = len(text)
        if cut > 0:
            self.counted += count_text_tokens(text[:cut])
            text = text[cut:]
        self.tail = text
        tokens = self.counted + count_text_tokens(text)
        self.cost = cost_micros(Usage(self.bound.prompt_tokens, tokens), dep.price)
        return self.cost > self.reservation.amount
