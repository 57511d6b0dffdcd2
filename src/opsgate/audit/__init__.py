"""The audit log: every admin action and every read of stored bodies, hash-chained.

`gateway.audit` is the process's `AuditLog`; `opsgate audit verify` (or
`POST /admin/v1/audit/verify`) walks the chain and names the first entry that does not hold;
given an `Anchor` (`SEQ:HASH` kept elsewhere) it also finds a cut-off tail.
"""

from opsgate.audit.chain import Anchor, AuditEntry, VerifyResult
from opsgate.audit.log import AuditLog, AuditUnavailableError
from opsgate.identity import pseudonym

__all__ = [
    "Anchor",
    "AuditEntry",
    "AuditLog",
    "AuditUnavailableError",
    "VerifyResult",
    "pseudonym",
]
