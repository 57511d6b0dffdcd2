"""Naming the actor of an HTTP request and writing audit entries after the fact, for the admin
API's audit layer (api/audit_middleware.py) and the dashboard's changes alike."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from opsgate.access.principal import ANONYMOUS, Principal
from opsgate.audit import AuditLog, AuditUnavailableError
from opsgate.web.auth import PRINCIPAL

log = logging.getLogger("opsgate.audit")

AUDITED = "opsgate.audited"
"""Set in the ASGI scope by a handler that wrote its own audit entry."""


def actor_of(scope: Scope) -> str:
    """Who is acting, as the log names them: `master`, `key:<id>`, `anonymous@<host>`."""
    principal: Principal | None = scope.get(PRINCIPAL)
    if principal is None:
        return "unauthenticated"
    if principal is ANONYMOUS:
        client = scope.get("client")
        return f"anonymous@{client[0] if client else '?'}"
    if principal.is_master:
        return "master"
    return f"key:{principal.key_id}"


async def append_or_log(
    audit: AuditLog, actor: str, action: str, target: str, detail: Mapping[str, Any]
) -> None:
    """Write one entry for an action that already happened. A failure is logged loudly and not
    raised: the action cannot be undone, and turning it into an error would misreport it."""
    try:
        await audit.append(actor, action, target, detail)
    except AuditUnavailableError as exc:
        log.error("audit entry %s on %s not written: %s", action, target, exc)
    except Exception:
        log.exception("audit entry %s on %s not written", action, target)
