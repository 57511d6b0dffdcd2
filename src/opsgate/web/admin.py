"""`admin_route`: the one way to write an admin API route.

    async def list_scores(call: AdminCall) -> Response:
        # a docstring here is the route's summary in the OpenAPI document
        rows = await call.gateway.scores.list(call.scope, limit=call.query.get("limit"))
        return JSONResponse({"object": "list", "data": rows})

    routes = [admin_route("GET", "/admin/v1/scores", list_scores, P.SCORES_READ, query=("limit",))]

Before the handler runs, the route checks, in this order: the caller's permissions (403 before
any look-up, so a refusal says nothing about ids; no permissions named means admins only, unless
`anyone`), the query parameters (400 naming the first unknown one) and the body (a JSON object
of at most 1 MiB validated by the pydantic model `body`: 400/413/422). Nothing is caught here:
an `OpsgateError` and a backend outage (`web.outage`: database, Redis, cache down → 503) reach
the app's exception handlers, which answer OpenAI-shaped JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission, in_scope, scope_filter
from opsgate.access.principal import Principal
from opsgate.gateway import Gateway
from opsgate.web.audit import AUDITED, actor_of
from opsgate.web.auth import authorise
from opsgate.web.body import read_json, validated
from opsgate.web.queries import check_known

MAX_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AdminCall:
    """One authorised admin request, as its handler sees it."""

    request: Request
    gateway: Gateway
    who: Principal
    body: Any = None
    """The validated body (an instance of the route's `body` model), or None without one."""

    @property
    def query(self) -> QueryParams:
        return self.request.query_params

    def path(self, name: str) -> str:
        """A path parameter (`{key_id}`)."""
        value: str = self.request.path_params[name]
        return value

    @property
    def actor(self) -> str:
        """The caller as the audit log names it (`master`, `key:<id>`, ...)."""
        return actor_of(self.request.scope)

    @property
    def scope(self) -> dict[str, str]:
        """The equality filters every read of tenant data must add (`{}` for admins,
        `{"team_id": ...}` for team roles, ...): access/permissions.py `scope_filter`."""
        return scope_filter(self.who)

    def sees(
        self, *, team_id: str | None, user_id: str | None = None, key_id: str | None = None
    ) -> bool:
        """Whether a stored row with these owners lies in the caller's scope (else answer 404,
        exactly as for an unknown id)."""
        return in_scope(self.who, team_id=team_id, user_id=user_id, key_id=key_id)

    @property
    def caller_key(self) -> str:
        """The caller's own key, for calls a background run makes on their behalf (eval runs,
        drift proposals, distillation); empty on a gateway without keys."""
        return self.request.headers.get("authorization", "").removeprefix("Bearer ").strip()

    @property
    def own_url(self) -> str:
        """This listener's `/v1`: a background run's calls come back in through the same port,
        so they are traced, limited and budgeted like any other."""
        server = self.request.scope.get("server")
        if server and server[1] is not None:
            host = "127.0.0.1" if server[0] in ("0.0.0.0", "::", "") else server[0]
            host = f"[{host}]" if ":" in host else host
            return f"http://{host}:{server[1]}/v1"
        return str(self.request.base_url).rstrip("/") + "/v1"

    def audited(self) -> None:
        """Say that the handler wrote its own, richer audit entry (the audit layer then adds
        none for this request)."""
        self.request.scope[AUDITED] = True


Handler = Callable[[AdminCall], Awaitable[Response]]


def admin_route(
    method: str,
    path: str,
    handler: Handler,
    *needs: Permission,
    anyone: bool = False,
    query: Collection[str] = (),
    body: type[BaseModel] | None = None,
) -> Route:
    """A route that runs `handler` for a caller holding every permission in `needs`.

    `query` names the query parameters the route knows; `body` is the pydantic model a JSON
    body must satisfy (routes that read another kind of body leave it None and read it
    themselves). The handler's docstring is the route's summary in the OpenAPI document.
    """
    known = frozenset(query)

    async def endpoint(request: Request) -> Response:
        who = authorise(request, *needs, anyone=anyone)
        check_known(request.query_params, known)
        data = validated(body, await read_json(request, MAX_BODY)) if body is not None else None
        return await handler(AdminCall(request, request.app.state.gateway, who, data))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return Route(path, endpoint, methods=[method])
