"""Metrics of drift: samples taken, the cost of embedding them, and per monitor its state and
p-value (what an alert rule such as "any monitor in drift" watches).

`monitor` is a monitor's name, declared in config or created by an admin: bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

STATE_VALUES = {"ok": 0, "warning": 1, "drift": 2, "insufficient_data": -1, "error": -2}
"""`opsgate_drift_state`'s values."""


class DriftMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.samples = Counter(
            "opsgate_drift_samples",
            "Traces sampled for drift, by outcome: stored, embedded (their prompt too), "
            "dropped (the queue was full).",
            ["outcome"],
            registry=r,
        )
        self.embed_seconds = Counter(
            "opsgate_drift_embed_seconds",
            "Seconds spent embedding sampled prompts (off the request path).",
            registry=r,
        )
        self.evaluations = Counter(
            "opsgate_drift_evaluations",
            "Monitor evaluations by monitor and resulting state.",
            ["monitor", "state"],
            registry=r,
        )
        self.claims = Counter(
            "opsgate_drift_claims",
            "Scheduled evaluations claimed by this replica (won) or left to another that had "
            "the monitor's period (lost).",
            ["outcome"],
            registry=r,
        )
        self.failures = Counter(
            "opsgate_drift_scheduler_failures",
            "Scheduled monitor runs that failed (the claim or result could not be written; "
            "monitor `*`: the monitor list could not be read); retried at the next tick.",
            ["monitor"],
            registry=r,
        )
        self.state = Gauge(
            "opsgate_drift_state",
            "A monitor's state: 0 ok, 1 warning, 2 drift, -1 insufficient_data, -2 error.",
            ["monitor"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.p_value = Gauge(
            "opsgate_drift_p_value",
            "A monitor's latest p-value (NaN when it had none).",
            ["monitor"],
            registry=r,
            multiprocess_mode="liveall",
        )

    def evaluated(self, monitor: str, state: str, p_value: float | None) -> None:
        self.evaluations.labels(monitor, state).inc()
        self.state.labels(monitor).set(STATE_VALUES[state])
        self.p_value.labels(monitor).set(float("nan") if p_value is None else p_value)
