"""Reading stored bodies: decrypt, and leave an audit entry first.

`gateway.bodies.read(record, actor)` is the one way the admin API, the dashboard and exports see
a prompt or completion. It checks no role (the caller does, with `traces:read_bodies`); it writes
the `trace.read_bodies` entry before decrypting, so no body is shown without a trail, and an
audit log that cannot be written stops the read.
"""

from __future__ import annotations

from collections.abc import Callable

from opsgate.audit import AuditLog, AuditUnavailableError
from opsgate.errors import OpsgateError, ServiceUnavailableError
from opsgate.store.crypto import BodyCipher, DecryptionError, open_record
from opsgate.store.records import TraceRecord

READ_BODIES = "trace.read_bodies"


class BodyReader:
    def __init__(self, cipher: Callable[[], BodyCipher | None], audit: AuditLog) -> None:
        self._cipher = cipher  # a callable: a config reload may bring keys in
        self._audit = audit

    async def read(self, record: TraceRecord, actor: str) -> tuple[bytes | None, bytes | None]:
        """(request body, response body) in plain bytes. Raises `AuditUnavailableError` when
        the read cannot be audited and `DecryptionError` when a body cannot be opened."""
        if record.request_body is None and record.response_body is None:
            return None, None
        await self._audit.append(actor, READ_BODIES, f"trace:{record.trace_id}")
        return open_record(self._cipher(), record)

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

    def open(self, record: TraceRecord) -> tuple[bytes | None, bytes | None]:
        """Decrypt without an entry of its own: for exports, which are audited as a whole."""
        return open_record(self._cipher(), record)
