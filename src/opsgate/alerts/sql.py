"""`AlertEventStore` on the gateway's database (SQLite or PostgreSQL), table `alert_events`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.alerts.events import Alert, AlertEvent, DeliveryStatus
from opsgate.alerts.store import MAX_LIST
from opsgate.store.tables.alerts import alert_events


class SqlAlertEventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, alert: Alert) -> None:
        row = {
            "id": alert.id,
            "created_at": alert.created_at,
            "kind": alert.kind,
            "severity": alert.severity,
            "message": alert.message,
            "labels": dict(alert.labels),
            "data": dict(alert.data),
            "status": "pending",
            "attempts": 0,
            "last_error": None,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(alert_events).values(row))
        except IntegrityError:
            return  # already stored: adding is idempotent

    async def mark(
        self, alert_id: str, status: DeliveryStatus, attempts: int, last_error: str | None
    ) -> None:
        stmt = (
            update(alert_events)
            .where(alert_events.c.id == alert_id)
            .values(status=status, attempts=attempts, last_error=last_error)
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def list_events(
        self, since: float | None = None, kind: str | None = None, limit: int = 100
    ) -> list[AlertEvent]:
        stmt = select(alert_events)
        if since is not None:
            stmt = stmt.where(alert_events.c.created_at >= since)
        if kind is not None and kind.endswith(".*"):
            prefix = kind[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where(alert_events.c.kind.like(prefix + "%", escape="\\"))
        elif kind is not None:
            stmt = stmt.where(alert_events.c.kind == kind)
        stmt = stmt.order_by(alert_events.c.created_at.desc(), alert_events.c.id.desc())
        stmt = stmt.limit(max(0, min(limit, MAX_LIST)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_event(dict(row)) for row in rows]


def _event(row: dict[str, Any]) -> AlertEvent:
    alert = Alert(
        kind=row["kind"],
        message=row["message"],
        severity=row["severity"],
        labels=row["labels"] or {},
        data=row["data"] or {},
        id=row["id"],
        created_at=row["created_at"],
    )
    return AlertEvent(alert, row["status"], row["attempts"], row["last_error"])
