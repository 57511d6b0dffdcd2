"""The innermost step of each pipeline: hand the call to the router."""

from __future__ import annotations

from opsgate.pipeline.context import ChatCall, ChatResult, EmbeddingCall, EmbeddingResult
from opsgate.routing.router import Router


class RouteChat:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, call: ChatCall) -> ChatResult:
        principal = call.ctx.principal
        call.ctx.route.team_id = principal.team_id if principal is not None else None
        if call.request.stream:
            return self.router.stream(call.request, call.ctx.route)
        return await self.router.complete(call.request, call.ctx.route)


class RouteEmbedding:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, call: EmbeddingCall) -> EmbeddingResult:
        return await self.router.embed(call.request, call.ctx.route)
