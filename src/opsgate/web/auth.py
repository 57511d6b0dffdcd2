"""Who is calling an HTTP route, for the admin API and the dashboard alike.

The admin API's access middleware (api/admin/access.py) and the dashboard's session check
(ui/visit.py) each leave the caller in the ASGI scope under `PRINCIPAL`; `authorise` then decides,
before any look-up, whether that caller may use the route.
"""

from __future__ import annotations

from starlette.requests import Request

from opsgate.access.permissions import Permission, is_global, require
from opsgate.access.principal import ANONYMOUS, Principal
from opsgate.errors import PermissionDeniedError

PRINCIPAL = "opsgate.principal"
"""Where the caller is left in the ASGI scope."""
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
"""Hosts a key-less caller is trusted from while no master key is set (the open laptop)."""


def authorise(request: Request, *needs: Permission, anyone: bool = False) -> Principal:
    """The caller, if its role has every permission in `needs`. With no `needs`, admins only,
    unless `anyone` (routes every valid key may read: whoami, the OpenAPI document)."""
    principal: Principal | None = request.scope.get(PRINCIPAL)
    if principal is None:  # the middleware did not run: refuse rather than guess
        raise PermissionDeniedError("admin routes need an authenticated caller", code="admin_only")
    if principal is ANONYMOUS:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK:
            raise PermissionDeniedError(
                "admin routes need the master key or an admin key", code="admin_only"
            )
    if not needs and not anyone and not is_global(principal):
        raise PermissionDeniedError(
            f"role {principal.role.value!r} may not use this admin route", code="admin_only"
        )
    require(principal, *needs)
    return principal
