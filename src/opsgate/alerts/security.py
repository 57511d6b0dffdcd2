"""Breach alerts: the security events an operator must hear about, de-duplicated.

`SecurityMonitor` is told about causes by the parts that see them (the audit watch, the 401
middleware, the audit log's observers, erasure, the body cipher) and raises one alert per cause
per `cooldown` on the alert channel. Every method is O(1) on in-memory counters and never
blocks: `emit` only queues the alert; storing and delivering happen in the channel's worker.

| kind | severity | cause |
| --- | --- | --- |
| `security.audit_chain_broken` | critical | a verification of the audit chain failed |
| `security.credential_stuffing` | warning | N 401 answers to one source address in a window |
| `security.body_read_rate` | warning | a key read stored bodies far above its own baseline |
| `security.export_rate` | warning | a key exported far above its own baseline |
| `security.erasure_failed` | critical | an end user's erasure did not complete |
| `security.encryption_key` | critical | a sealed body did not open, or a key left the keyring |
| `guard.canary_leak` | critical | an answer repeated the system prompt's canary (guard) |

Counts are per gateway process, like the guard's spike monitor: with several replicas each
watches the traffic it serves.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opsgate.alerts.events import Alert, Severity
from opsgate.audit.chain import AuditEntry, VerifyResult
from opsgate.config.security import RateConfig, SecurityConfig

Emit = Callable[[Alert], object]

AUDIT_BROKEN = "security.audit_chain_broken"
CREDENTIAL_STUFFING = "security.credential_stuffing"
BODY_READ_RATE = "security.body_read_rate"
EXPORT_RATE = "security.export_rate"
ERASURE_FAILED = "security.erasure_failed"
ENCRYPTION_KEY = "security.encryption_key"
CANARY_LEAK = "guard.canary_leak"
SECURITY_KINDS = (
    AUDIT_BROKEN,
    CREDENTIAL_STUFFING,
    BODY_READ_RATE,
    EXPORT_RATE,
    ERASURE_FAILED,
    ENCRYPTION_KEY,
    CANARY_LEAK,
)
"""What the dashboard's Security page lists."""

BODY_READ_ACTIONS = frozenset({"trace.read_bodies", "datasets.read_rows"})
EXPORT_ACTIONS = frozenset({"gdpr.export", "datasets.export"})
"""Audit actions counted per actor: reading stored bodies, and exporting data."""


@dataclass(slots=True)
class _Rate:
    """One actor's count in the current window and its baseline over past windows."""

    start: float
    baseline: float
    count: int = 0

    def roll(self, now: float, rule: RateConfig) -> None:
        """Close the windows that ended: each one's count enters the baseline (an EWMA), the
        empty ones as zeros, never below the floor."""
        passed = int((now - self.start) // rule.window)
        if passed <= 0:
            return
        keep = 1.0 - rule.alpha
        baseline = rule.alpha * self.count + keep * self.baseline
        baseline *= keep ** min(passed - 1, 1000)
        self.baseline = max(rule.floor, baseline)
        self.start += passed * rule.window
        self.count = 0


class SecurityMonitor:
    """`gateway.compliance.security`."""

    def __init__(
        self,
        config: SecurityConfig,
        emit: Emit | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.emit = emit
        self._clock = clock
        self._fired: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._rates: dict[str, OrderedDict[str, _Rate]] = {
            "read": OrderedDict(),
            "export": OrderedDict(),
        }
        self.raised = 0
        """Alerts raised since start (after de-duplication)."""

    # --- causes -------------------------------------------------------------------------------

    def auth_failed(self, source: str) -> None:
        """One 401 answered to `source` (a client address)."""
        if not self.config.enabled:
            return
        rule = self.config.auth_failures
        now = self._clock()
        seen = _lru(self._failures, source, self.config.max_sources)
        if seen is None or seen.maxlen != rule.threshold:
            seen = self._failures[source] = deque(seen or (), maxlen=rule.threshold)
        seen.append(now)
        if len(seen) < rule.threshold or now - seen[0] > rule.window:
            return
        self._fire(
            CREDENTIAL_STUFFING,
            source,
            "warning",
            f"{len(seen)} requests from {source} were refused as unauthenticated (401) within "
            f"{now - seen[0]:.0f}s: credential stuffing or a misconfigured client.",
            {"source": source},
            {"failures": len(seen), "window_s": rule.window},
        )

    def audited(self, entry: AuditEntry) -> None:
        """An audit entry was written: body reads and exports count against their actor."""
        if entry.action in BODY_READ_ACTIONS:
            self._count("read", entry.actor, self.config.body_reads, BODY_READ_RATE)
        elif entry.action in EXPORT_ACTIONS:
            self._count("export", entry.actor, self.config.exports, EXPORT_RATE)

    def audit_chain(self, result: VerifyResult) -> None:
        """A verification of the audit chain ended; a broken one alerts (per broken entry)."""
        if result.ok or not self.config.enabled:
            return
        self._fire(
            AUDIT_BROKEN,
            str(result.first_broken_seq),
            "critical",
            f"The audit log's hash chain does not hold at entry {result.first_broken_seq}: "
            f"{result.reason}. Entries from there on cannot be trusted.",
            {"first_broken_seq": str(result.first_broken_seq)},
            {"checked": result.checked, "reason": result.reason, "head": result.head},
        )

    def erasure_failed(self, subject: str, why: str) -> None:
        """An end user's erasure stopped part-way; `subject` is the end user's pseudonym and
        `why` must not name them (see `compliance.breach.erasure_reason`)."""
        if not self.config.enabled:
            return
        why = why[:300]
        self._fire(
            ERASURE_FAILED,
            subject,
            "critical",
            f"Erasure of end user {subject} did not complete ({why}); some of their data may "
            "remain. Erasure is idempotent: run it again once the cause is fixed.",
            {"end_user": subject},
            {"error": why},
        )

    def key_problem(self, key_id: str | None, message: str, *, cause: str) -> None:
        """A body encryption key is missing, removed or does not open what it sealed."""
        if not self.config.enabled:
            return
        kid = key_id or "-"
        self._fire(
            ENCRYPTION_KEY,
            f"{cause}:{kid}",
            "critical",
            message[:400],
            {"key_id": kid, "cause": cause},
            {},
        )

    # --- machinery ----------------------------------------------------------------------------

    def _count(self, family: str, actor: str, rule: RateConfig, kind: str) -> None:
        if not self.config.enabled:
            return
        now = self._clock()
        rates = self._rates[family]
        rate = _lru(rates, actor, self.config.max_sources)
        if rate is None:
            rate = rates[actor] = _Rate(now, rule.floor)
        rate.roll(now, rule)
        rate.count += 1
        limit = max(rule.factor * rate.baseline, float(rule.min_count))
        if rate.count <= limit:
            return
        what = "read stored bodies" if family == "read" else "exported data"
        self._fire(
            kind,
            actor,
            "warning",
            f"{actor} {what} {rate.count} times in the current {rule.window:g}s window, over "
            f"{rule.factor:g}x its baseline of {rate.baseline:.1f} per window.",
            {"actor": actor},
            {"count": rate.count, "baseline": round(rate.baseline, 3), "window_s": rule.window},
        )

    def _fire(
        self,
        kind: str,
        cause: str,
        severity: Severity,
        message: str,
        labels: Mapping[str, str],
        data: Mapping[str, Any],
    ) -> bool:
        """Raise one alert per (kind, cause) per cooldown; False when de-duplicated."""
        now = self._clock()
        key = (kind, cause)
        last = self._fired.get(key)
        if last is not None and now - last < self.config.cooldown:
            return False
        self._fired[key] = now
        self._fired.move_to_end(key)
        while len(self._fired) > self.config.max_sources:
            self._fired.popitem(last=False)
        self.raised += 1
        if self.emit is not None:
            self.emit(Alert(kind, message, severity, dict(labels), dict(data)))
        return True


def _lru(table: OrderedDict[str, Any], key: str, cap: int) -> Any:
    """`table[key]` moved to the newest end (None when absent), trimming the oldest to `cap`."""
    found = table.get(key)
    if found is not None:
        table.move_to_end(key)
    while len(table) >= cap and key not in table:
        table.popitem(last=False)
    return found
