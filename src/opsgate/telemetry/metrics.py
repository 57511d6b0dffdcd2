"""Prometheus metrics: what the gateway did, for dashboards and alerts.

Everything per request is derived from the finished `TraceRecord` in one call, `observe()`, so
the hot path touches metrics once and the numbers always agree with the stored traces. State
that lives elsewhere (circuit breakers, the trace writer's queue) is pulled from callbacks on
`refresh()`; `render()` refreshes before every scrape.

Several worker processes: when PROMETHEUS_MULTIPROC_DIR is set in the environment *before* the
process starts, prometheus-client keeps values in per-process files in that folder and
`render()` merges them; counters and histograms add up across workers, gauges use a
multiprocess mode that fits them (queue depth sums over live workers, circuit state shows the
worst live worker). The folder must be emptied before workers start (`prepare_multiprocess_dir`)
and a dead worker's gauges dropped with `mark_process_dead(pid)`. Because each worker only
updates the pulled gauges when it refreshes, workers should call `refresh()` on a timer (every
few seconds, e.g. from the trace writer's loop).

Each `Metrics` owns an explicit `CollectorRegistry`: nothing is registered at import time and
tests can make as many as they like.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client import values as prom_values
from prometheus_client.exposition import choose_encoder

from opsgate.telemetry.drift_metrics import DriftMetrics
from opsgate.telemetry.feedback_metrics import FeedbackMetrics
from opsgate.telemetry.online_metrics import OnlineMetrics
from opsgate.telemetry.writer_metrics import WriterMetrics, WriterSnapshot
from opsgate.trace import TraceRecord

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5,
    5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
)  # fmt: skip
"""Seconds: from cache hits (milliseconds) to long reasoning answers (minutes)."""

LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: a healthy loop stays under a few milliseconds; 100 ms is a saturated worker."""

CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
"""Gauge value per circuit state: higher is worse, so `max` across workers is the worst."""

UNKNOWN = "none"
_UNTRUSTED_MODEL_CODES = frozenset({400, 401, 403, 404, 413, 422})
"""Rejected before routing: the model name is whatever the client typed, not a config name."""
_MAX_LABEL = 120

CircuitStateLike = str | enum.Enum
"""A `routing.health.CircuitState` or its value; telemetry does not import routing."""


def _label(value: str | None) -> str:
    if not value:
        return UNKNOWN
    return value if len(value) <= _MAX_LABEL else value[:_MAX_LABEL]


def _circuit_value(state: CircuitStateLike) -> int:
    key = state.value if isinstance(state, enum.Enum) else state
    try:
        return CIRCUIT_VALUES[str(key).lower()]
    except KeyError:
        raise ValueError(f"unknown circuit state {state!r}") from None


def multiprocess_dir() -> str | None:
    """The multiprocess folder from the environment, when multiprocess mode is on."""
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def prepare_multiprocess_dir(path: str) -> None:
    """Create `path` and remove files left by earlier runs: call once, before workers start."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Drop a dead worker's live gauges (its counters stay in the totals)."""
    prom_multiprocess.mark_process_dead(pid, path or multiprocess_dir())  # type: ignore[no-untyped-call]


class Metrics:
    """The gateway's Prometheus metrics, on one registry. Make one with `create_metrics()`."""

    def __init__(self, registry: CollectorRegistry, multiproc_dir: str | None) -> None:
        self.registry = registry
        self.multiprocess_dir = multiproc_dir
        self._writer_sources: list[Callable[[], WriterSnapshot]] = []
        self._circuit_sources: list[Callable[[], Mapping[str, CircuitStateLike]]] = []
        r = registry
        route = ["model", "deployment"]
        self.requests = Counter(
            "opsgate_requests",
            "Gateway requests by model, deployment, endpoint, status (ok|error) and HTTP code.",
            [*route, "endpoint", "status", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "opsgate_request_duration_seconds",
            "Whole request duration, as the client saw it (to the last byte when streamed).",
            [*route, "stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "opsgate_time_to_first_token_seconds",
            "Time to the first streamed token.",
            route,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "opsgate_tokens",
            "Tokens by direction: input (all prompt tokens), cached (the part of input served "
            "from the provider's prompt cache) and output.",
            [*route, "direction"],
            registry=r,
        )
        self.cost = Counter(
            "opsgate_cost_usd", "Cost in USD at the deployment's price.", route, registry=r
        )
        self.upstream_errors = Counter(
            "opsgate_upstream_errors",
            "Failed upstream attempts by deployment and error type.",
            ["deployment", "type"],
            registry=r,
        )
        self.retries = Counter(
            "opsgate_retries", "Upstream attempts beyond the first.", ["model"], registry=r
        )
        self.fallbacks = Counter(
            "opsgate_fallbacks",
            "Requests answered by a fallback model group.",
            ["model"],
            registry=r,
        )
        self.cache_requests = Counter(
            "opsgate_cache_requests",
            "Cache lookups by result (hit-exact, hit-semantic, miss, bypass).",
            ["model", "result"],
            registry=r,
        )
        self.guard_verdicts = Counter(
            "opsgate_guard_verdicts",
            "Guard verdicts by check (injection, pii, secrets, canary, size, sensitivity), "
            "stage (input, output) and the action taken (flag, block, redact, sanitize, "
            "mask_in_logs, route). Per key: the traces' guard_verdicts, and spike alerts.",
            ["check", "stage", "action"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "opsgate_circuit_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open (worst worker).",
            ["deployment"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.loop_lag = Histogram(
            "opsgate_event_loop_lag_seconds",
            "How late the event loop runs a timer (sampled every 0.25 s per worker): the least "
            "time any request waits before the gateway starts on it. Rising lag is saturation.",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.malformed = Counter(
            "opsgate_malformed_completions",
            "Answers flagged as malformed, by model and kind: truncated (finish_reason "
            "length), invalid_json (not valid against the request's response_format).",
            ["model", "kind"],
            registry=r,
        )
        self.writer = WriterMetrics(r)
        self.feedback = FeedbackMetrics(r)
        self.online = OnlineMetrics(r)
        self.drift = DriftMetrics(r)

    # -- per request ------------------------------------------------------------------------

    def observe(self, trace: TraceRecord) -> None:
        """Count one finished request: traffic, latency, tokens, cost, errors, cache."""
        model = _label(trace.model_requested)
        if trace.deployment is None and trace.http_status in _UNTRUSTED_MODEL_CODES:
            model = "unknown"  # a client's made-up name must not become a new series
        deployment = _label(trace.deployment)
        self.requests.labels(
            model, deployment, trace.endpoint, trace.status, str(trace.http_status)
        ).inc()
        stream = "true" if trace.stream else "false"
        self.request_duration.labels(model, deployment, stream).observe(
            max(trace.duration_ms, 0.0) / 1000
        )
        if trace.ttft_ms is not None:
            self.ttft.labels(model, deployment).observe(max(trace.ttft_ms, 0.0) / 1000)
        for direction, count in (
            ("input", trace.prompt_tokens),
            ("output", trace.completion_tokens),
            ("cached", trace.cached_tokens),
        ):
            if count > 0:
                self.tokens.labels(model, deployment, direction).inc(count)
        if trace.cost_micros > 0:
            self.cost.labels(model, deployment).inc(trace.cost_micros / 1_000_000)
        self._observe_attempts(trace, model)
        if trace.cache is not None:
            self.cache_requests.labels(model, trace.cache).inc()
        for verdict in trace.guard_verdicts:
            check, stage = _label(verdict.get("check")), _label(verdict.get("stage"))
            self.guard_verdicts.labels(check, stage, _label(verdict.get("action"))).inc()
        if trace.malformed is not None:
            self.malformed.labels(model, trace.malformed).inc()

    def _observe_attempts(self, trace: TraceRecord, model: str) -> None:
        attempts = [s for s in trace.spans if s.name == "upstream_attempt"]
        for span in attempts:
            if span.status == "error":
                deployment = span.attributes.get("deployment") or trace.deployment
                kind = span.attributes.get("error") or "error"
                self.upstream_errors.labels(_label(deployment), _label(str(kind))).inc()
        if not attempts and trace.status == "error" and trace.attempts > 0:
            # No attempt spans recorded: count the final failure at least.
            self.upstream_errors.labels(
                _label(trace.deployment), _label(trace.error_type or "error")
            ).inc()
        if trace.attempts > 1:
            self.retries.labels(model).inc(trace.attempts - 1)
        if trace.fallback:
            self.fallbacks.labels(model).inc()

    # -- pulled state -----------------------------------------------------------------------

    def set_circuit_state(self, deployment: str, state: CircuitStateLike) -> None:
        self.circuit_state.labels(_label(deployment)).set(_circuit_value(state))

    def record_writer_stats(self, stats: WriterSnapshot) -> None:
        """Update the trace writer's metrics from its `stats()` snapshot (one writer each)."""
        self.writer.record(stats)

    def watch_writer(self, source: Callable[[], WriterSnapshot]) -> None:
        """Pull writer stats from `source` on every `refresh()`."""
        self._writer_sources.append(source)

    def watch_circuits(self, source: Callable[[], Mapping[str, CircuitStateLike]]) -> None:
        """Pull `{deployment: circuit state}` from `source` on every `refresh()`."""
        self._circuit_sources.append(source)

    def refresh(self) -> None:
        """Update the pulled gauges now; a failing source is logged, never raised."""
        for writer in self._writer_sources:
            try:
                self.record_writer_stats(writer())
            except Exception:
                log.exception("writer stats source failed")
        for circuits in self._circuit_sources:
            try:
                for deployment, state in circuits().items():
                    self.set_circuit_state(deployment, state)
            except Exception:
                log.exception("circuit state source failed")

    # -- exposition -------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The body and content type for GET /metrics (OpenMetrics when `accept` asks)."""
        self.refresh()
        encoder, content_type = choose_encoder(accept or "")
        if self.multiprocess_dir is None:
            return encoder(self.registry), content_type
        merged = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return encoder(merged), content_type

    def sample_names(self) -> set[str]:
        """Every series name exported so far, as PromQL sees it (`_total`, `_bucket`, ...)."""
        return {sample.name for family in self.registry.collect() for sample in family.samples}


def create_metrics(*, multiprocess: bool | None = None) -> Metrics:
    """New metrics on a fresh registry.

    `multiprocess=None` follows the environment (PROMETHEUS_MULTIPROC_DIR); asking for it when
    prometheus-client was loaded without that variable is an error, since values would stay in
    this process and never reach the folder.
    """
    path = multiprocess_dir()
    enabled = path is not None if multiprocess is None else multiprocess
    if not enabled:
        return Metrics(CollectorRegistry(), None)
    if path is None or prom_values.ValueClass is prom_values.MutexValue:
        raise RuntimeError(
            f"multiprocess metrics need {MULTIPROC_ENV} set in the environment before the "
            "process starts (prometheus-client reads it once, at import)"
        )
    return Metrics(CollectorRegistry(), path)


def metrics_response(metrics: Metrics, accept: str | None = None) -> tuple[bytes, str]:
    """(body, content type) for GET /metrics, framework-agnostic."""
    return metrics.render(accept)
