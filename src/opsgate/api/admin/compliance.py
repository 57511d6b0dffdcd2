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
from typing import Any

from starlette.responses import Response

from opsgate.access.permissions import Permission
from opsgate.api.responses import JSONResponse
from opsgate.api.trace_json import iso
from opsgate.audit import Anchor, AuditEntry, AuditUnavailableError, VerifyResult, pseudonym
from opsgate.errors import BadRequestError
from opsgate.identity import check_end_user
from opsgate.web.admin import AdminCall, admin_route

log = logging.getLogger("opsgate.api")
P = Permission
MAX_PAGE = 1000
_AUDIT_PARAMS = frozenset({"limit", "cursor", "action", "actor"})


def _end_user(call: AdminCall) -> str:
    end_user = call.path("end_user")
    check_end_user(end_user)
    return end_user


async def export_end_user(call: AdminCall) -> Response:
    """Everything kept about an end user (traces with bodies, usage, alerts, journal)"""
    gateway, end_user = call.gateway, _end_user(call)
    data = await gateway.subjects.export(end_user)
    counts = {name: len(v) for name, v in data.items() if isinstance(v, list | dict)}
    target = pseudonym("end_user", end_user)
    await gateway.audit.append(call.actor, "gdpr.export", target, {"sections": counts})
    call.audited()
    body = {"object": "end_user.export", "end_user": end_user, "exported_at": iso(time.time())}
    return JSONResponse({**body, "data": data})


async def erase_end_user(call: AdminCall) -> Response:
    """Erase everything kept about an end user; answers a receipt"""
    gateway, actor, end_user = call.gateway, call.actor, _end_user(call)
    target = pseudonym("end_user", end_user)
    call.audited()
    await gateway.audit.append(actor, "gdpr.erase", target, {"status": "started"})
    receipt = await gateway.subjects.erase(end_user)
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


async def list_audit(call: AdminCall) -> Response:
    """Audit log entries, newest first"""
    params = call.query
    limit = _int(params.get("limit"), "limit", 1, MAX_PAGE) or 100
    before = _int(params.get("cursor"), "cursor", 1, 2**62)
    found = await call.gateway.audit.entries(
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


async def verify_audit(call: AdminCall) -> Response:
    """Walk the audit log's hash chain; names the first broken entry (`?anchor=SEQ:HASH`: also
    a log cut off before that entry or rewritten up to it)"""
    gateway = call.gateway
    raw = call.query.get("anchor")
    try:
        anchor = Anchor.parse(raw) if raw is not None else None
    except ValueError as exc:
        raise BadRequestError(str(exc), code="invalid_anchor", param="anchor") from None
    result = await gateway.audit.verify(anchor=anchor)
    gateway.compliance.security.audit_chain(result)  # a broken chain is a breach alert
    call.audited()
    detail = {"ok": result.ok, "checked": result.checked, "broken": result.first_broken_seq}
    await gateway.audit.append(call.actor, "audit.verify", "audit_log", detail)
    return JSONResponse(verify_json(result))


_EU = "/admin/v1/end-users/{end_user:path}"
routes = [
    admin_route("GET", _EU + "/export", export_end_user, P.END_USERS_EXPORT),
    admin_route("DELETE", _EU, erase_end_user, P.END_USERS_ERASE),
    admin_route("GET", "/admin/v1/audit", list_audit, P.AUDIT_READ, query=_AUDIT_PARAMS),
    admin_route("POST", "/admin/v1/audit/verify", verify_audit, P.AUDIT_READ, query=("anchor",)),
]
