"""Where alerts are kept as events, so the admin API can list what fired and whether it was
delivered. `MemoryAlertEventStore` (embedded, tests) and `SqlAlertEventStore` (alerts_sql)."""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

from opsgate.alerts.events import Alert, AlertEvent, DeliveryStatus

MAX_LIST = 1000


@runtime_checkable
class AlertEventStore(Protocol):
    async def add(self, alert: Alert) -> None:
        """Store a new alert as a `pending` event (idempotent by id)."""
        ...

    async def mark(
        self, alert_id: str, status: DeliveryStatus, attempts: int, last_error: str | None
    ) -> None:
        """Record how delivery ended."""
        ...

    async def list_events(
        self, since: float | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AlertEvent]:
        """Events newest first, at most `limit` (capped at 1000); `kind` matches exactly or,
        ending in `.*`, by prefix (`budget.*`)."""
        ...


def kind_matches(kind: str, pattern: str | None) -> bool:
    if pattern is None:
        return True
    if pattern.endswith(".*"):
        return kind.startswith(pattern[:-1])
    return kind == pattern


class MemoryAlertEventStore:
    """`AlertEventStore` in a list; bounded, dropping the oldest."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._events: dict[str, AlertEvent] = {}

    async def add(self, alert: Alert) -> None:
        self._events.setdefault(alert.id, AlertEvent(alert))
        while len(self._events) > self.capacity:
            del self._events[next(iter(self._events))]

    async def mark(
        self, alert_id: str, status: DeliveryStatus, attempts: int, last_error: str | None
    ) -> None:
        event = self._events.get(alert_id)
        if event is not None:
            event.status, event.attempts, event.last_error = status, attempts, last_error

    async def list_events(
        self, since: float | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AlertEvent]:
        found = [
            dataclasses.replace(e)
            for e in self._events.values()
            if (since is None or e.alert.created_at >= since) and kind_matches(e.alert.kind, kind)
        ]
        found.sort(key=lambda e: (e.alert.created_at, e.alert.id), reverse=True)
        return found[: max(0, min(limit, MAX_LIST))]
