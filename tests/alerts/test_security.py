"""The breach-alert monitor on its own, with a hand-moved clock: thresholds, the per-key
baseline (an EWMA of past windows, with a floor), and one alert per cause per cooldown."""

from __future__ import annotations

from opsgate.alerts.events import Alert
from opsgate.alerts.security import SecurityMonitor
from opsgate.audit.chain import AuditEntry, VerifyResult
from opsgate.config.security import AuthFailureConfig, RateConfig, SecurityConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor(**config: object) -> tuple[SecurityMonitor, list[Alert], Clock]:
    alerts: list[Alert] = []
    clock = Clock()
    return SecurityMonitor(SecurityConfig(**config), alerts.append, clock=clock), alerts, clock  # type: ignore[arg-type]


def entry(action: str, actor: str = "key:a") -> AuditEntry:
    return AuditEntry(1, 0.0, actor, action, "trace:x", "{}", "0" * 64, "1" * 64)


def test_401s_alert_at_the_threshold_within_the_window_once_per_cooldown() -> None:
    mon, alerts, clock = monitor(auth_failures=AuthFailureConfig(threshold=3, window=10))
    for _ in range(2):
        mon.auth_failed("10.0.0.1")
    clock.now += 11  # the two are now outside the window
    mon.auth_failed("10.0.0.1")
    mon.auth_failed("10.0.0.2")  # another address counts on its own
    assert alerts == []
    mon.auth_failed("10.0.0.1")
    mon.auth_failed("10.0.0.1")
    [alert] = alerts
    assert alert.kind == "security.credential_stuffing" and alert.labels == {"source": "10.0.0.1"}
    for _ in range(50):
        mon.auth_failed("10.0.0.1")
    assert len(alerts) == 1, "one alert per cause per cooldown"
    clock.now += 901
    for _ in range(3):
        mon.auth_failed("10.0.0.1")
    assert len(alerts) == 2


def test_body_reads_alert_against_the_keys_own_baseline() -> None:
    rule = RateConfig(window=60, factor=3, min_count=5, floor=1, alpha=0.5)
    mon, alerts, clock = monitor(body_reads=rule, cooldown=100)
    for _ in range(4):  # a busy key: 20 reads a window, for four windows
        for _ in range(20):
            mon.audited(entry("trace.read_bodies", "key:busy"))
        clock.now += 60
    # a new key starts at the floor: its first window alerted, the next three did not
    assert [a.data["count"] for a in alerts] == [6]
    alerts.clear()
    # the baseline is now about 18.8 a window: 40 reads is under 3x it
    for _ in range(40):
        mon.audited(entry("trace.read_bodies", "key:busy"))
    assert alerts == []
    for _ in range(6):  # a quiet key: a handful is under the absolute minimum
        mon.audited(entry("trace.read_bodies", "key:quiet"))
    assert [a.labels["actor"] for a in alerts] == ["key:quiet"]
    assert alerts[0].kind == "security.body_read_rate" and alerts[0].data["count"] == 6
    for _ in range(30):
        mon.audited(entry("trace.read_bodies", "key:busy"))
    assert alerts[-1].labels == {"actor": "key:busy"} and alerts[-1].data["count"] == 57
    mon.audited(entry("config.reload"))  # other actions are not counted
    mon.audited(entry("datasets.export", "key:quiet"))
    assert len(alerts) == 2


def test_audit_chain_keys_and_switching_off() -> None:
    mon, alerts, _ = monitor()
    mon.audit_chain(VerifyResult(True, 10, head_hash="a" * 64))
    broken = VerifyResult(False, 4, 5, "hash does not match", "b" * 64)
    mon.audit_chain(broken)
    mon.audit_chain(broken)
    mon.key_problem("k1", "k1 gone", cause="removed")
    mon.key_problem("k1", "k1 does not open", cause="open")
    assert [(a.kind, a.severity) for a in alerts] == [
        ("security.audit_chain_broken", "critical"),
        ("security.encryption_key", "critical"),
        ("security.encryption_key", "critical"),
    ]
    assert alerts[0].labels == {"first_broken_seq": "5"}
    off, quiet, _ = monitor(enabled=False)
    off.audit_chain(broken)
    off.auth_failed("x")
    off.erasure_failed("end_user:sha256:x", "boom")
    assert quiet == []
