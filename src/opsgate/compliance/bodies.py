"""Reading stored bodies: decrypt, and leave an audit entry first.

`gateway.bodies.read(record, actor)` is the one way the admin API, the dashboard and exports see
a prompt or completion. It checks no role (the caller does, with `traces:read_bodies`); it writes
the `trace.read_bodies` entry before decrypting, so no body is shown without a trail, and an
audit log that cannot be written stops the read. An end user's data export opens bodies with
`open_bodies` instead: the export is audited as a whole (`gdpr.export`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opsgate.audit import AuditLog, AuditUnavailableError
from opsgate.errors import OpsgateError, ServiceUnavailableError
from opsgate.store.codec import body_json
from opsgate.store.crypto import BODY_FIELDS, BodyCipher, DecryptionError, open_body, open_record
from opsgate.trace import TraceRecord

READ_BODIES = "trace.read_bodies"


class BodyReader:
    def __init__(
        self,
        cipher: Callable[[], BodyCipher | None],
        audit: AuditLog,
        *,
        on_key_problem: Callable[[DecryptionError], object] | None = None,
    ) -> None:
        self._cipher = cipher  # a callable: a config reload may bring keys in
        self._audit = audit
        self._on_key_problem = on_key_problem
        """Told of each body that would not open (a missing or wrong key): the breach alert."""

    async def read(self, record: TraceRecord, actor: str) -> tuple[bytes | None, bytes | None]:
        """(request body, response body) in plain bytes. Raises `AuditUnavailableError` when
        the read cannot be audited and `DecryptionError` when a body cannot be opened."""
        if record.request_body is None and record.response_body is None:
            return None, None
        await self._audit.append(actor, READ_BODIES, f"trace:{record.trace_id}")
        try:
            return open_record(self._cipher(), record)
        except DecryptionError as exc:
            if self._on_key_problem is not None:
                self._on_key_problem(exc)
            raise

    async def read_or_refuse(
        self, record: TraceRecord, actor: str
    ) -> tuple[bytes | None, bytes | None]:
        """`read`, with its failures as the errors an API answers: 503 `audit_unavailable`
        when the read cannot be audited, 500 `body_undecryptable` naming the missing key."""
        try:
            return await self.read(record, actor)
        except AuditUnavailableError:
            raise ServiceUnavailableError(
                "Bodies are not shown while the audit log cannot record the read; try again.",
                code="audit_unavailable",
            ) from None
        except DecryptionError as exc:
            raise OpsgateError(str(exc), code="body_undecryptable") from None


def open_bodies(cipher: BodyCipher | None, trace: dict[str, Any]) -> None:
    """Replace a trace's stored bodies (`trace` is its fields as a dict) with their plain JSON
    form for an export, which is audited as a whole; a body that cannot be opened becomes
    `{"error": ...}` so one missing key does not stop the rest of the export."""
    for name in BODY_FIELDS:
        raw = trace[name]
        if raw is None:
            continue
        try:
            trace[name] = body_json(open_body(cipher, bytes(raw), trace["trace_id"], name))
        except DecryptionError as exc:
            trace[name] = {"error": str(exc)}
