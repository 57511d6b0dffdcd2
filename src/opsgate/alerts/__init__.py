"""Alerts: a small channel any part can raise alerts on (budgets now, drift and errors later),
stored as events for the admin API and delivered to signed webhooks with retries."""

from opsgate.alerts.channel import AlertChannel, ChannelStats, DeliveryError, RetryPolicy, Sink
from opsgate.alerts.store import AlertEventStore, MemoryAlertEventStore
from opsgate.alerts.types import Alert, AlertEvent, DeliveryStatus, Severity
from opsgate.alerts.webhook import SIGNATURE_HEADER, WebhookSink, sign, verify

__all__ = [
    "SIGNATURE_HEADER",
    "Alert",
    "AlertChannel",
    "AlertEvent",
    "AlertEventStore",
    "ChannelStats",
    "DeliveryError",
    "DeliveryStatus",
    "MemoryAlertEventStore",
    "RetryPolicy",
    "Severity",
    "Sink",
    "WebhookSink",
    "sign",
    "verify",
]
