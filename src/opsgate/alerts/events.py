"""An alert: something an operator should hear about (a budget threshold, later drift, errors).

Plain data, so any part can raise one without knowing where it goes; the `AlertService` stores
it as an event and delivers it to the configured sinks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
DeliveryStatus = Literal["pending", "delivered", "failed", "no_sink"]


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    """Dotted name, e.g. `budget.threshold`; the admin API filters on it."""
    message: str
    """One sentence for a human (it is the Slack text)."""
    severity: Severity = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    """What it is about (`scope`, `id`, `period`, ...)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Numbers behind the message, JSON-serialisable."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "labels": dict(self.labels),
            "data": dict(self.data),
            "created_at": self.created_at,
        }


@dataclass(slots=True)
class AlertEvent:
    """A stored alert with how its delivery went."""

    alert: Alert
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.alert.to_json(),
            "object": "alert_event",
            "delivery": {
                "status": self.status,
                "attempts": self.attempts,
                "last_error": self.last_error,
            },
        }
