"""Authenticate: resolve the caller's key to a principal, and stop callers who may not call.

- The master key (`OPSGATE_MASTER_KEY`) is the bootstrap admin.
- Virtual keys (`og-…`) resolve through `AccessService` (in-process cache; no database read per
  request once warm).
- With no master key and no virtual key ever created, the gateway is open (the laptop default):
  every caller is `ANONYMOUS`. Once either exists, every call needs a valid key.

401 answers say which of missing / malformed / unknown / expired / revoked / disabled applies;
403 answers a role that may not call models, or a model outside the key's `allowed_models`
(checked here, before routing).
"""

from __future__ import annotations

import hmac
from typing import Any

from opsgate.access.control import AccessService, malformed_key
from opsgate.access.keys import is_virtual_key
from opsgate.access.permissions import Permission, require
from opsgate.access.principal import ANONYMOUS, MASTER, Principal
from opsgate.errors import AuthenticationError, PermissionDeniedError
from opsgate.pipeline.context import RequestContext
from opsgate.pipeline.pipeline import C, Next
from opsgate.prompts.model import MODEL_PREFIX


def _missing() -> AuthenticationError:
    return AuthenticationError(
        "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
        code="missing_api_key",
    )


def check_model(principal: Principal, model: str) -> None:
    """403 unless the principal's `allowed_models` globs admit `model`."""
    if not principal.may_use(model):
        raise PermissionDeniedError(
            f"this key may not use model {model!r}; allowed: {', '.join(principal.allowed_models)}",
            code="model_not_allowed",
            param="model",
        )


class Authenticate:
    def __init__(self, master_key: str | None, access: AccessService | None = None) -> None:
        self._master = master_key.encode() if master_key else None
        self.access = access

    @property
    def enforced(self) -> bool:
        """Whether callers need a key: a master key is set, or a virtual key exists."""
        return self._master is not None or bool(self.access and self.access.has_keys)

    async def __call__(self, call: C, call_next: Next[C, Any]) -> Any:
        # A caller inside the process that already authenticated (the dashboard's playground,
        # for its session's key) hands the principal in; HTTP requests always start without.
        principal = call.ctx.principal or await self.resolve(call.ctx)
        require(principal, Permission.MODELS_CALL)
        model = getattr(getattr(call, "request", None), "model", None)
        if isinstance(model, str) and not model.startswith(MODEL_PREFIX):
            check_model(principal, model)  # a prompt's model is checked once it is resolved
        return await call_next(call)

    async def resolve(self, ctx: RequestContext, *, trusted: bool = False) -> Principal:
        """Set and return `ctx.principal`, or raise AuthenticationError (401).

        `trusted`: a caller on this machine while no master key is set (the admin API keeps
        answering it as before, so a laptop is never locked out of its own gateway).
        """
        ctx.principal = await self._principal(ctx.bearer, trusted)
        return ctx.principal

    async def _principal(self, token: str | None, trusted: bool) -> Principal:
        master = self._master
        if token is not None and master is not None and hmac.compare_digest(token.encode(), master):
            return MASTER
        if not self.enforced or (token is None and trusted and self._master is None):
            return ANONYMOUS
        if token is None:
            raise _missing()
        if self.access is None or not is_virtual_key(token):
            raise malformed_key()
        return await self.access.resolve(token)
