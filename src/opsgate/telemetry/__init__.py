"""Telemetry: Prometheus metrics and OpenTelemetry GenAI spans, both fed from finished traces."""

from opsgate.telemetry.metrics import (
    CIRCUIT_VALUES,
    LATENCY_BUCKETS,
    Metrics,
    create_metrics,
    mark_process_dead,
    metrics_response,
    multiprocess_dir,
    prepare_multiprocess_dir,
)
from opsgate.telemetry.otel import GenAITracer, create_tracer
from opsgate.telemetry.writer_metrics import WriterMetrics, WriterSnapshot

__all__ = [
    "CIRCUIT_VALUES",
    "LATENCY_BUCKETS",
    "GenAITracer",
    "Metrics",
    "WriterMetrics",
    "WriterSnapshot",
    "create_metrics",
    "create_tracer",
    "mark_process_dead",
    "metrics_response",
    "multiprocess_dir",
    "prepare_multiprocess_dir",
]
