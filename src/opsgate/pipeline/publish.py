"""Where a finished trace goes: Prometheus, OpenTelemetry, the background writer and, when an
online evaluation rule draws it, online scoring's queue.

All are in-memory hand-offs (counters, a span processor's queue, the writer's queue, the
scoring queue), so publishing never waits on I/O and never fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsgate.evals.online import Draw, OnlineEvaluator
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
        online: OnlineEvaluator | None = None,
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
        self.online = online if online is not None and online.enabled else None
        """Online scoring (`evals.online` rules): draws finished traces and scores the drawn
        ones in the background."""

    @property
    def wants_output(self) -> bool:
        """Whether this request's bodies (request and answer text) are kept: stored, or
        captured by OpenTelemetry."""
        return self.store_bodies or (self.tracer is not None and self.tracer.capture_content)

    def samples(self, model: str) -> bool:
        """Whether answers of `model` keep their text, for online scoring to draw from."""
        return self.online is not None and self.online.watches(model)

    def draw(self, trace: TraceRecord) -> Draw | None:
        """The online rules that sample this finished trace (None: not sampled)."""
        return self.online.draw(trace) if self.online is not None else None

    def publish(
        self,
        trace: TraceRecord,
        detail: TraceDetail,
        *,
        draw: Draw | None = None,
        request: Mapping[str, Any] | None = None,
        output: str | None = None,
    ) -> None:
        """Hand the trace on; a `draw` queues the answer (`request` as stored, `output`) for
        online scoring, after the observers have seen the trace."""
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
        if draw is not None and self.online is not None:
            try:
                self.online.submit(trace, draw, request, output)
            except Exception:
                log.exception("online scoring could not take trace %s", trace.trace_id)
