"""Metrics for the background trace writer, fed from its stats snapshot.

The writer keeps cumulative counts; Prometheus counters must only go up and, with several
workers, must add up across processes. So each snapshot advances the counters by what changed
since the previous one (a smaller number means the writer restarted and counts from zero), and
queue sizes are gauges summed over live workers.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge


class WriterSnapshot(Protocol):
    """What metrics read from `opsgate.store.WriterStats` (matched by shape, not imported)."""

    @property
    def queue_depth(self) -> int: ...
    @property
    def queue_capacity(self) -> int: ...
    @property
    def overflow_depth(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def batches_written(self) -> int: ...
    @property
    def batch_latency_last_s(self) -> float: ...
    @property
    def batch_latency_avg_s(self) -> float: ...
    @property
    def failures(self) -> int: ...
    @property
    def spilled(self) -> int: ...
    @property
    def replayed(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def store_healthy(self) -> bool: ...


_COUNTERS = {
    "written": ("opsgate_traces_written", "Traces the store accepted (replays included)."),
    "spilled": (
        "opsgate_traces_spilled",
        "Traces appended to the journal (queue full, store down or shutdown).",
    ),
    "replayed": ("opsgate_traces_replayed", "Journal traces re-sent to the store."),
    "rejected": ("opsgate_traces_rejected", "Traces the database refused (dead-letter file)."),
    "dropped": ("opsgate_traces_dropped", "Traces lost: the journal could not be written."),
    "failures": ("opsgate_trace_store_failures", "Store writes that failed (store down)."),
    "batches": ("opsgate_trace_batches", "Batches written by the trace writer."),
    "batch_seconds": ("opsgate_trace_batch_seconds", "Time spent writing trace batches."),
}


def _cumulative(stats: WriterSnapshot) -> dict[str, float]:
    return {
        "written": stats.written,
        "spilled": stats.spilled,
        "replayed": stats.replayed,
        "rejected": stats.rejected,
        "dropped": stats.dropped,
        "failures": stats.failures,
        "batches": stats.batches_written,
        "batch_seconds": stats.batch_latency_avg_s * stats.batches_written,
    }


class WriterMetrics:
    """The trace writer's gauges and counters on a registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.queue_depth = Gauge(
            "opsgate_trace_queue_depth",
            "Traces waiting for the background writer (all live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_capacity = Gauge(
            "opsgate_trace_queue_capacity",
            "Size of the in-memory trace queue (all live workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.overflow_depth = Gauge(
            "opsgate_trace_overflow_depth",
            "Traces that found the queue full and wait to be moved to the journal.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.last_batch = Gauge(
            "opsgate_trace_last_batch_seconds",
            "How long the writer's latest batch took (slowest live worker).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.store_healthy = Gauge(
            "opsgate_trace_store_healthy",
            "1 when the trace store accepts writes, 0 when the writer is spilling to the journal "
            "(the least healthy live worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.counters = {
            key: Counter(name, doc, registry=r) for key, (name, doc) in _COUNTERS.items()
        }
        self._last: dict[str, float] = dict.fromkeys(_COUNTERS, 0.0)

    def record(self, stats: WriterSnapshot) -> None:
        """Set the gauges and advance the counters by what changed since the last snapshot."""
        self.queue_depth.set(stats.queue_depth)
        self.queue_capacity.set(stats.queue_capacity)
        self.overflow_depth.set(stats.overflow_depth)
        self.last_batch.set(stats.batch_latency_last_s)
        self.store_healthy.set(1 if stats.store_healthy else 0)
        now = _cumulative(stats)
        for key, value in now.items():
            before = self._last[key]
            delta = value - before if value >= before else value
            if delta > 0:
                self.counters[key].inc(delta)
        self._last = now
