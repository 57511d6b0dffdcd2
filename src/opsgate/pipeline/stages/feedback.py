"""FeedbackToken: every chat answer carries `x-opsgate-feedback-token` when metrics are
declared, so a browser can score the answer without an API key (feedback/tokens.py).

It sits right after authentication (the token names the caller's team) and sets the header on
the way in, so streamed answers, whose headers leave with the first chunk, carry it too.
"""

from __future__ import annotations

from opsgate.feedback.service import FeedbackService
from opsgate.feedback.tokens import HEADER
from opsgate.pipeline.context import ChatCall, ChatResult
from opsgate.pipeline.pipeline import Next


class FeedbackToken:
    def __init__(self, feedback: FeedbackService) -> None:
        self.feedback = feedback

    async def __call__(self, call: ChatCall, call_next: Next[ChatCall, ChatResult]) -> ChatResult:
        ctx = call.ctx
        team = ctx.principal.team_id if ctx.principal is not None else None
        ctx.response_headers[HEADER] = self.feedback.issue_token(
            ctx.trace_id, team_id=team, session_id=ctx.labels.session_id
        )
        return await call_next(call)
