"""Spike alerts: a key's blocked-injection or PII rate over a sliding window, one alert per
cooldown, through the real alert channel."""

from __future__ import annotations

import asyncio

from opsgate.alerts.channel import AlertService
from opsgate.alerts.events import Alert
from opsgate.alerts.store import MemoryAlertEventStore
from opsgate.config.guard import MonitorConfig
from opsgate.guard.monitor import GuardMonitor
from opsgate.guard.verdicts import Verdict

BLOCKED = [Verdict("injection", "input", "block", (("user", 1),), 0.99)]
PII = [Verdict("pii", "input", "redact", (("EMAIL", 1),))]
CLEAN: list[Verdict] = []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **config: float) -> tuple[GuardMonitor, list[Alert]]:
    sent: list[Alert] = []
    settings = MonitorConfig(window=60, min_requests=10, injection_rate=0.2, cooldown=300, **config)
    return GuardMonitor(settings, sent.append, clock=clock), sent


def test_no_alert_below_min_requests_or_threshold() -> None:
    clock = Clock()
    monitor, sent = make(clock)
    for _ in range(5):
        monitor.observe("k1", BLOCKED)
    assert sent == []  # 5 requests: too few to judge
    for _ in range(30):
        monitor.observe("k1", CLEAN)
    monitor.observe("k1", BLOCKED)
    assert sent == []  # 6 of 36 = 17%: under 20%
    assert monitor.rates("k1")[0] == 36


def test_one_alert_per_cooldown_and_per_key() -> None:
    clock = Clock()
    monitor, sent = make(clock)
    for _ in range(8):
        monitor.observe("k1", CLEAN)
        monitor.observe("k2", CLEAN)
    for _ in range(4):
        monitor.observe("k1", BLOCKED)
    assert len(sent) == 1
    alert = sent[0]
    assert alert.kind == "guard.injection_spike"
    assert alert.labels == {"key_id": "k1", "check": "injection"}
    for _ in range(10):
        monitor.observe("k1", BLOCKED)
    assert len(sent) == 1, "cooldown"
    clock.now += 301
    monitor.observe("k1", BLOCKED)
    assert len(sent) == 1, "the window moved on: the old blocks no longer count"
    for _ in range(12):
        monitor.observe("k1", BLOCKED)
    assert len(sent) == 2
    assert monitor.rates("k2")[1] == 0.0


def test_pii_spike_and_window_expiry() -> None:
    clock = Clock()
    monitor, sent = make(clock, pii_rate=0.5)
    for _ in range(10):
        monitor.observe("k", PII)
    assert [a.kind for a in sent] == ["guard.pii_spike"]
    clock.now += 61
    assert monitor.rates("k") == (0, 0.0, 0.0)


def test_keys_tracked_are_bounded() -> None:
    clock = Clock()
    monitor, _ = make(clock, max_keys=3)
    for key in "abcde":
        monitor.observe(key, CLEAN)
    assert [k for k in "abcde" if monitor.rates(k)[0]] == ["c", "d", "e"]


def test_alerts_reach_the_alert_channel() -> None:
    async def run() -> list[str]:
        store = MemoryAlertEventStore()
        channel = AlertService(store=store)
        channel.start()
        monitor = GuardMonitor(MonitorConfig(min_requests=2, injection_rate=0.5), channel.emit)
        monitor.observe("k", BLOCKED)
        monitor.observe("k", BLOCKED)
        await channel.drain()
        events = await store.list_events(kind="guard.*")
        await channel.aclose()
        return [e.alert.kind for e in events]

    assert asyncio.run(run()) == ["guard.injection_spike"]


def test_a_canary_leak_alerts_at_once_then_waits_for_the_cooldown() -> None:
    clock = Clock()
    monitor, sent = make(clock)  # cooldown 300 s
    monitor.leaked("k", "t1")
    monitor.leaked("k", "t2")
    monitor.leaked("other", "t3")
    assert [(a.kind, a.severity, a.labels["key_id"], a.data["trace_id"]) for a in sent] == [
        ("guard.canary_leak", "critical", "k", "t1"),
        ("guard.canary_leak", "critical", "other", "t3"),
    ]
    clock.now += 299
    monitor.leaked("k", "t4")
    clock.now += 2
    monitor.leaked("k", "t5")
    assert [a.data["trace_id"] for a in sent] == ["t1", "t3", "t5"]
