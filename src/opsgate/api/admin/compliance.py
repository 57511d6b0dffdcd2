"""Admin API for data subject rights and the audit log (admins only).

- `GET /admin/v1/end-users/{end_user}/export`: everything kept about an end user, as JSON (bodies
  decrypted). An id nothing is kept about answers 200 with empty sections: "no data" is the
  truthful answer, and whether an id ever existed is not something the gateway knows.
- `DELETE /admin/v1/end-users/{end_user}`: erase it all, synchronously; the answer is a receipt
  counting what went per table or store (zeros for an unknown id: erasure is idempotent).
- `GET /admin/v1/audit`: entries, newest first (`limit`, `cursor`, `action`, `actor`).
- `POST /admin/v1/audit/verify[?anchor=SEQ:HASH]`: walk the hash chain; names the first entry
  that does not hold (with an anchor kept elsewhere, also a cut-off or rewritten tail).

Export and erasure write their own audit entries, naming the end user by pseudonym only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.api.responses import JSONResponse, error_response
from opsgate.api.trace_json import iso
from opsgate.audit import Anchor, AuditEntry, AuditUnavailableError, VerifyResult, pseudonym
from opsgate.errors import BadRequestError, OpsgateError, ServiceUnavailableError
from opsgate.gateway import Gateway
from opsgate.identity import check_end_user
from opsgate.store.errors import StoreUnavailableError
from opsgate.web.audit import AUDITED, actor_of
from opsgate.web.auth import authorise
from opsgate.web.queries import check_known

log = logging.getLogger("opsgate.api")
P = Permission
Handler = Callable[[Request, Gateway, str], Awaitable[Response]]
MAX_PAGE = 1000
_AUDIT_PARAMS = frozenset({"limit", "cursor", "action", "actor"})


def _endpoint(handler: Handler, need: Permission) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        try:
            authorise(request, need)
            return await handler(request, gateway, actor_of(request.scope))
        except OpsgateError as exc:
            return error_response(exc)
        except (AuditUnavailableError, StoreUnavailableError, SQLAlchemyError, OSError) as exc:
            log.warning("compliance admin call failed: %s", exc)
            return error_response(
                ServiceUnavailableError(
                    "the database is unavailable; nothing was returned or half done, try again",
                    code="store_unavailable",
                )
            )

    endpoint.__doc__ = handler.__doc__
    return endpoint


def _end_user(request: Request) -> str:
    if request.query_params:
        name = next(iter(request.query_params))
        raise BadRequestError(f"unknown query parameter {name!r}", code="unknown_parameter")
    end_user: str = request.path_params["end_user"]
    check_end_user(end_user)
    return end_user


async def export_end_user(request: Request, gateway: Gateway, actor: str) -> Response:
    """Everything kept about an end user (traces with bodies, usage, alerts, journal)"""
    end_user = _end_user(request)
    data = await gateway.compliance.subjects.export(end_user)
    counts = {name: len(v) for name, v in data.items() if isinstance(v, list | dict)}
    target = pseudonym("end_user", end_user)
    await gateway.audit.append(actor, "gdpr.export", target, {"sections": counts})
    request.scope[AUDITED] = True
    body = {"object": "end_user.export", "end_user": end_user, "exported_at": iso(time.time())}
    return JSONResponse({**body, "data": data})


async def erase_end_user(request: Request, gateway: Gateway, actor: str) -> Response:
    """Erase everything kept about an end user; answers a receipt"""
    end_user = _end_user(request)
    target = pseudonym("end_user", end_user)
    request.scope[AUDITED] = True
    await gateway.audit.append(actor, "gdpr.erase", target, {"status": "started"})
    receipt = await gateway.compliance.subjects.erase(end_user)
    detail = {"status": "completed", "counts": receipt.counts}
    try:
        entry = await gateway.audit.append(actor, "gdpr.erase", target, detail)
    except AuditUnavailableError as exc:  # the data is gone; say so rather than report failure
        log.error("erasure of %s completed but its receipt was not audited: %s", target, exc)
        entry = None
    return JSONResponse(
        {
            "object": "end_user.erasure",
            "end_user": end_user,
            "pseudonym": target,
            "counts": receipt.counts,
            "total": receipt.total,
            "started_at": iso(receipt.started_at),
            "completed_at": iso(receipt.completed_at),
            "audit_seq": entry.seq if entry else None,
        }
    )


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "object": "audit.entry",
        "seq": entry.seq,
        "at": entry.at,
        "at_iso": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail_data(),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _int(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequestError(
            f"{name} must be an integer from {low} to {high}", code="invalid_parameter", param=name
        )
    return int(raw)


async def list_audit(request: Request, gateway: Gateway, actor: str) -> Response:
    """Audit log entries, newest first"""
    params = request.query_params
    check_known(params, _AUDIT_PARAMS)
    limit = _int(params.get("limit"), "limit", 1, MAX_PAGE) or 100
    before = _int(params.get("cursor"), "cursor", 1, 2**62)
    found = await gateway.audit.entries(
        limit=limit, before=before, action=params.get("action"), actor=params.get("actor")
    )
    cursor = str(found[-1].seq) if len(found) == limit and found[-1].seq > 1 else None
    return JSONResponse(
        {"object": "list", "data": [entry_json(e) for e in found], "next_cursor": cursor}
    )


def verify_json(result: VerifyResult) -> dict[str, Any]:
    return {
        "object": "audit.verification",
        "ok": result.ok,
        "checked": result.checked,
        "first_broken_seq": result.first_broken_seq,
        "reason": result.reason,
        "head_hash": result.head_hash,
        "head": result.head,
    }


async def verify_audit(request: Request, gateway: Gateway, actor: str) -> Response:
    """Walk the audit log's hash chain; names the first broken entry (`?anchor=SEQ:HASH`: also
    a log cut off before that entry or rewritten up to it)"""
    unknown = sorted(set(request.query_params) - {"anchor"})
    if unknown:
        raise BadRequestError(f"unknown query parameter {unknown[0]!r}", code="unknown_parameter")
    raw = request.query_params.get("anchor")
    try:
        anchor = Anchor.parse(raw) if raw is not None else None
    except ValueError as exc:
        raise BadRequestError(str(exc), code="invalid_anchor", param="anchor") from None
    result = await gateway.audit.verify(anchor=anchor)
    request.scope[AUDITED] = True
    detail = {"ok": result.ok, "checked": result.checked, "broken": result.first_broken_seq}
    await gateway.audit.append(actor, "audit.verify", "audit_log", detail)
    return JSONResponse(verify_json(result))


_EU = "/admin/v1/end-users/{end_user:path}"
routes = [
    Route(_EU + "/export", _endpoint(export_end_user, P.END_USERS_EXPORT), methods=["GET"]),
    Route(_EU, _endpoint(erase_end_user, P.END_USERS_ERASE), methods=["DELETE"]),
    Route("/admin/v1/audit", _endpoint(list_audit, P.AUDIT_READ), methods=["GET"]),
    Route("/admin/v1/audit/verify", _endpoint(verify_audit, P.AUDIT_READ), methods=["POST"]),
]
