"""Where a finished trace goes: Prometheus, OpenTelemetry and the background writer.

All three are in-memory hand-offs (counters, a span processor's queue, the writer's queue), so
publishing never waits on I/O and never fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsgate.pipeline.deferred import Deferred
from opsgate.store.writer import TraceWriter
from opsgate.telemetry.metrics import Metrics
from opsgate.telemetry.otel import GenAITracer
from opsgate.trace import TraceRecord

log = logging.getLogger("opsgate.publish")


@dataclass(slots=True)
class TraceDetail:
    """What OpenTelemetry wants beside the record (never stored)."""

    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] | None = None
    response_id: str | None = None
    server_url: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    output: str | None = None


class TracePublisher:
    def __init__(
        self,
        metrics: Metrics | None = None,
        tracer: GenAITracer | None = None,
        writer: TraceWriter | None = None,
        *,
        store_bodies: bool = False,
        deferred: Deferred | None = None,
        observers: Sequence[Callable[[TraceRecord], None]] = (),
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer if tracer is not None and tracer.enabled else None
        self.writer = writer
        self.store_bodies = store_bodies
        self.deferred = deferred or Deferred()
        """Finishes traces off the loop (masking bodies); shared by every runtime of a
        gateway, and drained before its writer stops."""
        self.observers = tuple(observers)
        """In-memory hooks called with each published trace (feedback's index of recent
        traces); they must be cheap and must not block."""

    @property
    def wants_output(self) -> bool:
        """Whether this request's bodies (request and answer text) are kept: stored, or
        captured by OpenTelemetry."""
        return self.store_bodies or (self.tracer is not None and self.tracer.capture_content)

    def publish(self, trace: TraceRecord, detail: TraceDetail) -> None:
        if self.metrics is not None:
            try:
                self.metrics.observe(trace)
            except Exception:
                log.exception("metrics failed for trace %s", trace.trace_id)
        if self.tracer is not None:
            try:
                self.tracer.emit(
                    trace,
                    headers=detail.headers,
                    params=detail.params,
                    response_id=detail.response_id,
                    server_url=detail.server_url,
                    messages=detail.messages,
                    output=detail.output,
                )
            except Exception:
                log.exception("OpenTelemetry export failed for trace %s", trace.trace_id)
        if self.writer is not None:
            self.writer.submit(trace)
        for observe in self.observers:
            try:
                observe(trace)
            except Exception:
                log.exception("a trace observer failed for trace %s", trace.trace_id)
