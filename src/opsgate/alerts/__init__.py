"""Alerts: a small channel any part can raise alerts on (budgets now, drift and errors later),
stored as events for the admin API and delivered to signed webhooks with retries."""

from opsgate.alerts.channel import AlertService, ChannelStats, DeliveryError, RetryPolicy, Sink
from opsgate.alerts.events import Alert, AlertEvent, DeliveryStatus, Severity
from opsgate.alerts.store import AlertEventStore, MemoryAlertEventStore
from opsgate.alerts.webhook import SIGNATURE_HEADER, WebhookSink, sign, verify

__all__ = [
    "SIGNATURE_HEADER",
    "Alert",
    "AlertEvent",
    "AlertEventStore",
    "AlertService",
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
