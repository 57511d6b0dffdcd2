"""RenderPrompt and JoinPrompt: the prompt registry's two places in the chat pipeline.

    record → authenticate → RenderPrompt → admit → InputGuard → JoinPrompt → cache → ...

- RenderPrompt resolves `model: "prompt:name@label"` (or a `prompt` object) in the caller's
  team, from the in-memory cache, renders it with the request's variables and hands on an
  ordinary request: the prompt's model and parameters, the rendered messages then the caller's
  own turns. It sits before admission, so rate limits and the budget hold price the model and
  prompt actually sent, and before the input guard and the cache, so what is scanned and cached
  is the rendered prompt. A bad reference or variable is a 4xx here: nothing is sent upstream.
- Text a variable put into a message reaches the input guard as a content part marked
  untrusted (prompts/request.py); JoinPrompt, right after the guard, makes each such message
  one string again, so the cache key and the upstream see exactly the rendered text.
"""

from __future__ import annotations

from dataclasses import replace

from opsgate.guard.policy import scans_input
from opsgate.guard.service import GuardService
from opsgate.pipeline.context import ChatCall, ChatResult
from opsgate.pipeline.pipeline import Next
from opsgate.pipeline.stages.authenticate import check_model
from opsgate.prompts.model import NO_TEAM
from opsgate.prompts.request import PromptUse, apply, join_parts, read_call
from opsgate.prompts.service import PromptService

PROMPT_HEADER = "x-opsgate-prompt"
"""The response header naming the version served (`support-triage@7`)."""


class RenderPrompt:
    def __init__(self, service: PromptService, guard: GuardService | None = None) -> None:
        self.service = service
        self.guard = guard
        """Variables are marked untrusted only where the input guard will scan the request."""

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        found = read_call(call.request)
        if found is None:  # the fast path: an ordinary request
            return await call_next(call)
        ctx, principal = call.ctx, call.ctx.principal
        team = (principal.team_id if principal is not None else None) or NO_TEAM
        resolved = await self.service.resolve(team, found.ref)
        version = resolved.version
        ctx.prompt = PromptUse(version.name, version.version, found.ref.label, version.spec.model)
        mark = self.guard is None or scans_input(self.guard.policy_for(principal))
        request = apply(resolved, call.request, found, mark=mark)
        if principal is not None:
            check_model(principal, request.model)
        ctx.prompt = replace(ctx.prompt, model=request.model, request=request)
        ctx.response_headers[PROMPT_HEADER] = ctx.prompt.text
        return await call_next(ChatCall(ctx, request))


class JoinPrompt:
    """Each rendered message the guard saw in parts, one string again (see the module doc)."""

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        if call.ctx.prompt is not None:
            joined = join_parts(call.request.messages)
            if joined is not None:
                call = ChatCall(call.ctx, replace(call.request, messages=joined))
        return await call_next(call)
