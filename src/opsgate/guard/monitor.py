"""Compliance monitoring: spike alerts when a key's blocked-injection or PII rate jumps, and a
breach alert when an answer leaks the system prompt (its canary).

Each guarded request of a key is counted in a sliding window (ten time buckets, so memory per
key is constant); when the share of requests blocked as injection, or carrying PII, passes its
threshold over at least `min_requests` requests, one alert goes to the alert channel, then no
other of that kind for that key until `cooldown` has passed. Counts are per gateway process:
with several replicas each watches its own share of the traffic (a rate, unlike a count,
needs no sum across replicas to mean something).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opsgate.alerts.events import Alert
from opsgate.config.guard import MonitorConfig
from opsgate.guard.verdicts import Verdict

Emit = Callable[[Alert], object]
BUCKETS = 10


@dataclass(slots=True)
class _Window:
    starts: list[float] = field(default_factory=lambda: [0.0] * BUCKETS)
    requests: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    injections: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    pii: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    alerted: dict[str, float] = field(default_factory=dict)


class GuardMonitor:
    def __init__(
        self,
        config: MonitorConfig,
        emit: Emit | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.emit = emit
        self._clock = clock
        self._keys: OrderedDict[str, _Window] = OrderedDict()

    def observe(self, key: str, verdicts: Sequence[Verdict]) -> None:
        """Count one guarded request of `key` and alert when a rate crossed its threshold."""
        if not self.config.enabled:
            return
        now = self._clock()
        window = self._window(key)
        slot = self._slot(window, now)
        window.requests[slot] += 1
        injected = any(v.check == "injection" and v.action == "block" for v in verdicts)
        window.injections[slot] += injected
        window.pii[slot] += any(v.check == "pii" and v.stage == "input" for v in verdicts)
        if injected:
            self._check(key, window, "injection", window.injections, self.config.injection_rate)
        if window.pii[slot]:
            self._check(key, window, "pii", window.pii, self.config.pii_rate)

    def leaked(self, key: str, trace_id: str) -> None:
        """An answer to `key` repeated the request's canary: the system prompt leaked (a
        prompt-extraction attack got through to the model). One critical alert per key and
        `cooldown`, naming the first trace; the answer itself was already blocked."""
        if not self.config.enabled:
            return
        now = self._clock()
        window = self._window(key)
        last = window.alerted.get("canary")
        if last is not None and now - last < self.config.cooldown:
            return
        window.alerted["canary"] = now
        if self.emit is not None:
            self.emit(
                Alert(
                    kind="guard.canary_leak",
                    message=(
                        f"Key {key}: an answer repeated the system prompt's canary, so the "
                        f"prompt leaked to the model's output (trace {trace_id}; the answer "
                        "was blocked)."
                    ),
                    severity="critical",
                    labels={"key_id": key, "check": "canary"},
                    data={"trace_id": trace_id},
                )
            )

    def rates(self, key: str) -> tuple[int, float, float]:
        """(requests, injection rate, PII rate) of `key` over the window, for tests and debug."""
        window = self._keys.get(key)
        if window is None:
            return 0, 0.0, 0.0
        live = self._live(window, self._clock())
        total = sum(window.requests[i] for i in live)
        if not total:
            return 0, 0.0, 0.0
        inj = sum(window.injections[i] for i in live) / total
        return total, inj, sum(window.pii[i] for i in live) / total

    def _window(self, key: str) -> _Window:
        window = self._keys.get(key)
        if window is None:
            window = self._keys[key] = _Window()
            while len(self._keys) > self.config.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return window

    def _slot(self, window: _Window, now: float) -> int:
        width = self.config.window / BUCKETS
        start = now - now % width
        slot = int(now // width) % BUCKETS
        if window.starts[slot] != start:
            window.starts[slot] = start
            window.requests[slot] = window.injections[slot] = window.pii[slot] = 0
        return slot

    def _live(self, window: _Window, now: float) -> list[int]:
        return [i for i in range(BUCKETS) if now - window.starts[i] < self.config.window]

    def _check(
        self, key: str, window: _Window, kind: str, hits: list[int], threshold: float
    ) -> None:
        now = self._clock()
        live = self._live(window, now)
        total = sum(window.requests[i] for i in live)
        found = sum(hits[i] for i in live)
        if total < self.config.min_requests or found / total <= threshold:
            return
        last = window.alerted.get(kind)
        if last is not None and now - last < self.config.cooldown:
            return
        window.alerted[kind] = now
        if self.emit is not None:
            self.emit(_alert(key, kind, found, total, threshold, self.config.window))


def _alert(key: str, kind: str, found: int, total: int, threshold: float, window: float) -> Alert:
    what = "blocked as prompt injection" if kind == "injection" else "carried PII"
    return Alert(
        kind=f"guard.{kind}_spike",
        message=(
            f"Key {key}: {found} of its last {total} requests {what} "
            f"({found / total:.0%} over {window:g}s, threshold {threshold:.0%})."
        ),
        severity="warning",
        labels={"key_id": key, "check": kind},
        data={"found": found, "requests": total, "rate": found / total, "threshold": threshold},
    )
