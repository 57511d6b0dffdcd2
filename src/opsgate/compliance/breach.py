"""The breach-alert wiring of compliance: a scheduled audit-chain verification, and checks on
the body encryption keys when the configuration changes.

The causes go to the `SecurityMonitor` (alerts/security.py), which de-duplicates them and
raises alerts on the alert channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from opsgate.alerts.security import SecurityMonitor
from opsgate.audit import AuditLog, VerifyResult, pseudonym
from opsgate.store.crypto import BodyCipher, DecryptionError

log = logging.getLogger("opsgate.compliance")
_IDLE_S = 60.0
"""How often a switched-off schedule looks again for a new interval (after a reload)."""


class AuditWatch:
    """Verifies the whole audit chain every `interval()` seconds, off the request path; a
    broken chain is a critical alert. The last result is kept for the Security page."""

    def __init__(
        self,
        audit: AuditLog,
        monitor: SecurityMonitor,
        interval: Callable[[], float],
    ) -> None:
        self.audit = audit
        self.monitor = monitor
        self.interval = interval
        self.last: VerifyResult | None = None
        self.last_at: float | None = None
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> VerifyResult | None:
        """Verify now; None when the log could not be read (logged, kept as `last_error`)."""
        try:
            result = await self.audit.verify()
        except Exception as exc:  # the database is down: the next round tries again
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("scheduled audit verification could not run: %s", self.last_error)
            return None
        self.last, self.last_at, self.last_error = result, time.time(), None
        self.monitor.audit_chain(result)
        return result

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            every = self.interval()
            await asyncio.sleep(every if every > 0 else _IDLE_S)
            if every > 0 and self.interval() > 0:
                await self.check()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def removed_keys(old: BodyCipher | None, new: BodyCipher | None) -> list[str]:
    """Key ids the old keyring had and the new one lacks: bodies sealed with them no longer
    open until they are re-sealed (`opsgate keys rotate-encryption` before removing a key)."""
    if old is None:
        return []
    kept = set(new.keyring.keys) if new is not None else set()
    return sorted(set(old.keyring.keys) - kept)


def report_removed(
    monitor: SecurityMonitor, old: BodyCipher | None, new: BodyCipher | None
) -> None:
    for kid in removed_keys(old, new):
        monitor.key_problem(
            kid,
            f"Body encryption key {kid!r} was removed from the keyring by a reload: bodies sealed "
            "with it cannot be read any more. Put it back (after the new current key) and run "
            "`opsgate keys rotate-encryption` before removing it.",
            cause="removed",
        )


def report_undecryptable(monitor: SecurityMonitor, exc: DecryptionError) -> None:
    monitor.key_problem(exc.key_id, f"A stored body could not be opened: {exc}", cause="open")


def erasure_reason(end_user: str, subject: str, error: BaseException) -> str:
    """The error's type and first line (a database error's later lines quote the statement's
    parameters), with the end user's id replaced by their pseudonym."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first}".replace(end_user, subject)


def report_erasure_failure(monitor: SecurityMonitor, end_user: str, error: BaseException) -> None:
    subject = pseudonym("end_user", end_user)
    monitor.erasure_failed(subject, erasure_reason(end_user, subject, error))
