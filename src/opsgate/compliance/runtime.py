"""`ComplianceService`: the gateway's encryption, audit log, body reader, data subjects and
retention.

One object so the composition root (gateway.py) only creates it, hands its `seal` to the trace
writer, and starts and stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.alerts.security import Emit, SecurityMonitor
from opsgate.audit import AuditLog
from opsgate.cache.service import CacheService
from opsgate.compliance.bodies import BodyReader
from opsgate.compliance.breach import (
    AuditWatch,
    report_erasure_failure,
    report_removed,
    report_undecryptable,
)
from opsgate.compliance.encryption import resolve_cipher
from opsgate.compliance.holders_local import CacheData, JournalData
from opsgate.compliance.holders_sql import BudgetAlerts, EndUserTables, Tombstone, TraceData
from opsgate.compliance.retention import Retention
from opsgate.compliance.subjects import DataSubjects, PersonalData
from opsgate.config.compliance import RetentionConfig
from opsgate.config.loader import ConfigError
from opsgate.config.schema import Config
from opsgate.store.crypto import BodyCipher, EncryptionConfigError, seal_record
from opsgate.store.writer import TraceWriter
from opsgate.trace import TraceRecord


def cipher_for(config: Config, source: str) -> BodyCipher | None:
    """`resolve_cipher`, with key problems reported like any other config error."""
    try:
        return resolve_cipher(config)
    except EncryptionConfigError as exc:
        raise ConfigError(source, [f"encryption: {exc}"]) from None


class ComplianceService:
    def __init__(
        self,
        config: Config,
        engine: AsyncEngine,
        *,
        source: str,
        retention: Callable[[], RetentionConfig],
        emit: Emit | None = None,
    ) -> None:
        self.cipher = cipher_for(config, source)
        self.security = SecurityMonitor(config.alerts.security, emit)
        """Breach alerts (alerts/security.py): told of audit, erasure and key problems here,
        and of 401s by the API's middleware."""
        self.audit = AuditLog(engine)
        self.audit.observers.append(self.security.audited)
        self.audit_watch = AuditWatch(
            self.audit, self.security, lambda: self.security.config.audit_verify_interval
        )
        self.bodies = BodyReader(
            self._cipher,
            self.audit,
            on_key_problem=lambda exc: report_undecryptable(self.security, exc),
        )
        self.subjects = DataSubjects()
        self.subjects.on_failure.append(
            lambda end_user, exc: report_erasure_failure(self.security, end_user, exc)
        )
        self.retention = Retention(engine, retention, audit=self.audit)
        self._engine = engine
        self._tables = EndUserTables(engine)

    def register(self, holder: PersonalData, *, tables: Iterable[str] = ()) -> None:
        """Another part's holder of personal data (scores, dataset rows), after the built-ins;
        `tables` are the ones it erases itself, which the generic sweep then leaves to it."""
        self._tables.skip = self._tables.skip | frozenset(tables)
        self.subjects.register(holder)

    def seal(self, record: TraceRecord) -> TraceRecord:
        """The trace writer's seal step (runs in the background, never on the request path)."""
        return seal_record(self.cipher, record)

    def register_builtins(self, writer: TraceWriter | None, cache: CacheService | None) -> None:
        """The gateway's own holders of personal data. The tombstone goes first (its own
        transaction, committed before any delete): every trace write from then on, in any
        replica or journal replay, drops the end user's earlier traces. Then the journal, so
        nothing replayed from it refills the tables after they were cleared."""
        cipher = self._cipher
        self.subjects.register(Tombstone(self._engine))
        if writer is not None:
            self.subjects.before_erase.append(writer.flush)
            self.subjects.register(JournalData(lambda: writer.journal, cipher))
        self.subjects.register(TraceData(self._engine, cipher))
        self.subjects.register(self._tables)
        self.subjects.register(BudgetAlerts(self._engine))
        if cache is not None:
            self.subjects.register(CacheData(cache))

    def _cipher(self) -> BodyCipher | None:
        return self.cipher

    def reload(self, config: Config, source: str) -> None:
        """Pick up changed keys (a rotation adds one to the key file) or a new body policy; a
        key that left the keyring is a breach alert (its bodies no longer open)."""
        old, self.cipher = self.cipher, cipher_for(config, source)
        self.security.config = config.alerts.security
        report_removed(self.security, old, self.cipher)

    def start(self) -> None:
        self.retention.start()
        self.audit_watch.start()

    async def aclose(self) -> None:
        await self.audit_watch.aclose()
        await self.retention.aclose()
