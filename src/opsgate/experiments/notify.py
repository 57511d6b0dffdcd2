"""What an experiment's state change tells the world: an audit entry and an alert event.

Neither may fail the change it reports: a failed audit write is logged, a missing audit log or
alert sink is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opsgate.alerts.events import Alert
from opsgate.audit import AuditLog
from opsgate.experiments.model import Experiment

log = logging.getLogger("opsgate.experiments")

Emit = Callable[[Alert], object]


class Notifier:
    def __init__(self, audit: AuditLog | None, emit: Emit | None) -> None:
        self.audit_log = audit
        self.emit = emit

    async def audit(self, actor: str, action: str, exp: Experiment, detail: dict[str, Any]) -> None:
        if self.audit_log is None:
            return
        try:
            await self.audit_log.append(actor, action, f"experiments/{exp.name}", detail)
        except Exception:
            log.exception("audit entry %s for experiment %s not written", action, exp.name)

    def alert(self, kind: str, message: str, exp: Experiment, severity: str = "info") -> None:
        if self.emit is None:
            return
        labels = {"experiment": exp.name, "team_id": exp.team_id}
        data = {
            "decision": exp.decision.to_json() if exp.decision else None,
            "promoted": exp.promoted,
        }
        self.emit(Alert(kind, message, severity=severity, labels=labels, data=data))  # type: ignore[arg-type]
