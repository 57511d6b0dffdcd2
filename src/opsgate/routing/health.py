"""Per-deployment health: latency and error EWMAs, load, a rate window and a circuit breaker.

All of it is in-process and lock-free (one event loop); each replica learns health from its
own traffic, which is what it needs to route its own requests.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class Circuit:
    """Opens after `threshold` consecutive failures; after `cooldown` lets one probe through."""

    threshold: int
    cooldown: float
    clock: Clock = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def state(self) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if self.clock() - self.opened_at >= self.cooldown:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allows(self) -> bool:
        state = self.state
        return state is CircuitState.CLOSED or (
            state is CircuitState.HALF_OPEN and not self.probing
        )

    def on_start(self) -> None:
        if self.state is CircuitState.HALF_OPEN:
            self.probing = True

    def on_success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def on_failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at = self.clock()
        self.probing = False


@dataclass(slots=True)
class RateWindow:
    """Requests and tokens in the current minute, for a deployment's rpm/tpm caps."""

    rpm: int | None
    tpm: int | None
    clock: Clock = time.monotonic
    minute: int = -1
    requests: int = 0
    tokens: int = 0

    def _roll(self) -> None:
        now = int(self.clock() // 60)
        if now != self.minute:
            self.minute, self.requests, self.tokens = now, 0, 0

    def has_room(self) -> bool:
        self._roll()
        if self.rpm is not None and self.requests >= self.rpm:
            return False
        return self.tpm is None or self.tokens < self.tpm

    def add_request(self) -> None:
        self._roll()
        self.requests += 1

    def add_tokens(self, tokens: int) -> None:
        self._roll()
        self.tokens += tokens


@dataclass(slots=True)
class Health:
    circuit: Circuit
    window: RateWindow
    alpha: float = 0.2
    latency: float | None = None
    """EWMA seconds of a full non-streamed answer."""
    ttft: float | None = None
    """EWMA seconds to a stream's first chunk."""
    error_rate: float = 0.0
    in_flight: int = 0
    cool_until: float = 0.0
    """Monotonic time before which the upstream asked us not to call (Retry-After)."""
    requests: int = 0
    errors: int = 0
    last_error: str | None = None

    def available(self) -> bool:
        return self.circuit.allows() and self.window.has_room()

    def cool(self, seconds: float) -> None:
        self.cool_until = max(self.cool_until, self.circuit.clock() + seconds)

    def cooling_for(self) -> float:
        return max(0.0, self.cool_until - self.circuit.clock())

    def on_stream_broken(self, kind: str) -> None:
        """A stream that started well and then failed: counts against the deployment."""
        self.errors += 1
        self.last_error = kind
        self.error_rate = self.error_rate * (1 - self.alpha) + self.alpha
        self.circuit.on_failure()

    def on_start(self) -> None:
        self.in_flight += 1
        self.requests += 1
        self.circuit.on_start()
        self.window.add_request()

    def on_success(self, seconds: float, *, stream: bool) -> None:
        self.in_flight -= 1
        self._observe(seconds, stream)
        self.error_rate *= 1 - self.alpha
        self.circuit.on_success()

    def on_failure(self, kind: str, *, counts: bool = True) -> None:
        """`counts=False` for failures that say nothing about the deployment (a client error)."""
        self.in_flight -= 1
        if counts:
            self.errors += 1
            self.last_error = kind
            self.error_rate = self.error_rate * (1 - self.alpha) + self.alpha
            self.circuit.on_failure()
        else:
            self.circuit.probing = False

    def _observe(self, seconds: float, stream: bool) -> None:
        if stream:
            self.ttft = seconds if self.ttft is None else self._mix(self.ttft, seconds)
        else:
            self.latency = seconds if self.latency is None else self._mix(self.latency, seconds)

    def _mix(self, old: float, new: float) -> float:
        return old + self.alpha * (new - old)

    def expected_latency(self, stream: bool) -> float | None:
        return (self.ttft or self.latency) if stream else (self.latency or self.ttft)
