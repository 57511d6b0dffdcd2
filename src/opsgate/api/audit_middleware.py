"""Every admin action goes into the audit log: a pure-ASGI layer inside `AccessMiddleware`.

Each `/admin/` request that may change something (any method but GET, HEAD, OPTIONS) gets one
entry, written when the response starts (so a client that reads the log next sees it) with who,
what (`keys.create`, `keys.revoke`, `config.reload`, `cache.purge`, ...), the path and the
status, failures and refusals included. Request bodies are never logged (they carry secrets).
Handlers that write a richer entry themselves (erasure, export, body reads) mark the scope.
`web.audit.append_or_log` is the one way to write an entry for something that already happened.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsgate.audit import AuditLog, pseudonym
from opsgate.web.audit import AUDITED, actor_of, append_or_log

log = logging.getLogger("opsgate.audit")

_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_VERBS = {"POST": "create", "PUT": "set", "PATCH": "update", "DELETE": "delete"}
_END_USER = re.compile(r"^(/admin/v1/end-users/)(.+)$", re.DOTALL)
_EXPORT = "/export"


def action_of(method: str, path: str) -> str:
    """`keys.create` for `POST /admin/v1/keys`, `keys.revoke` for `POST .../k1/revoke`."""
    parts = [p for p in path.removeprefix("/admin/v1/").split("/") if p]
    resource = parts[0] if parts else "admin"
    verb = _VERBS.get(method, method.lower())
    if method == "POST" and len(parts) >= 2:
        verb = parts[-1]
        if resource == "end-users" and verb != _EXPORT[1:]:
            verb = _VERBS[method]  # the last part is (part of) an end user's id: never logged
    return f"{resource}.{verb}"


def target_of(method: str, path: str) -> str:
    """The path, with an end user's id replaced by its pseudonym (the log must not keep it).

    The route takes the id as a `path` (it may hold "/"), so the id is everything after the
    prefix, as the erasure route reads it; only for another method is a trailing `/export` the
    export route's suffix and kept."""
    found = _END_USER.match(path)
    if found is None:
        return path
    prefix, end_user = found.groups()
    suffix = ""
    if method != "DELETE" and end_user.endswith(_EXPORT) and len(end_user) > len(_EXPORT):
        end_user, suffix = end_user.removesuffix(_EXPORT), _EXPORT
    return prefix + pseudonym("end_user", end_user) + suffix


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] in _READS or not path.startswith("/admin/"):
            await self.app(scope, receive, send)
            return
        written = False

        async def send_audited(message: Message) -> None:
            nonlocal written
            if message["type"] == "http.response.start" and not written:
                written = True
                await self._append(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            if not written:
                written = True
                await self._append(scope, 500)
            raise

    @staticmethod
    async def _append(scope: Scope, status: int) -> None:
        if scope.get(AUDITED):
            return
        method, path = scope["method"], scope["path"]
        detail: dict[str, Any] = {"method": method, "status": status}
        audit: AuditLog = scope["app"].state.gateway.audit
        action, target = action_of(method, path), target_of(method, path)
        await append_or_log(audit, actor_of(scope), action, target, detail)
