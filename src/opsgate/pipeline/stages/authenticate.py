"""Authenticate: resolve the caller's key to a principal.

Until access control lands, the only key is the master key (`OPSGATE_MASTER_KEY`); without one
the gateway is open, which is the embedded default for a laptop.
"""

from __future__ import annotations

import hmac
from typing import Any

from opsgate.access.principal import ANONYMOUS, MASTER, Principal
from opsgate.errors import AuthenticationError
from opsgate.pipeline.context import RequestContext
from opsgate.pipeline.pipeline import C, Next


class Authenticate:
    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None

    async def __call__(self, call: C, call_next: Next[C, Any]) -> Any:
        self.authenticate(call.ctx)
        return await call_next(call)

    def authenticate(self, ctx: RequestContext) -> Principal:
        if self._master is None:
            ctx.principal = ANONYMOUS
            return ctx.principal
        token = ctx.bearer
        if token is None:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
                code="missing_api_key",
            )
        if not hmac.compare_digest(token.encode(), self._master):
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        ctx.principal = MASTER
        return ctx.principal
