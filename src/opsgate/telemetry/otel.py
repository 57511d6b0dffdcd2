"""OpenTelemetry spans for each request, following the GenAI semantic conventions.

Spans are made after the fact from the finished `TraceRecord` (with its own start and end
times), so the hot path carries no span objects and a trace looks the same in opsgate and in
any OTel backend. One CLIENT span per request (`chat {model}` / `embeddings {model}`), a child
per recorded step (upstream attempts as CLIENT spans, guard and cache steps as INTERNAL). A W3C
`traceparent` from the caller makes the request span a child of the caller's span; otherwise
the OTel trace id is opsgate's own trace id, so the two are the same number.

Export is OTLP over http/protobuf, on only when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Prompts and completions are recorded only when
opted in (`capture_content`, or OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from opsgate._version import __version__
from opsgate.telemetry.genai_content import input_messages, output_messages
from opsgate.trace import SpanRecord, TraceRecord

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

PROVIDER_NAMES = {"azure": "azure.ai.openai", "google": "gcp.gemini", "bedrock": "aws.bedrock"}
"""Our dialect names where they differ from the semantic conventions' provider names."""

_REQUEST_PARAMS: dict[str, str] = {
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "stop": "gen_ai.request.stop_sequences",
    "dimensions": "gen_ai.embeddings.dimension.count",
}
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_wanted_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "opsgate_otel_trace_id", default=None
)
_wanted_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "opsgate_otel_span_id", default=None
)


class _OpsgateIdGenerator(RandomIdGenerator):
    """Uses opsgate's trace id for a new OTel trace, so both systems share one id, and a span
    id derived from it for the request span, so later spans (a score's evaluation event) can
    name it as their parent."""

    def generate_trace_id(self) -> int:
        wanted = _wanted_trace_id.get()
        return wanted if wanted else super().generate_trace_id()

    def generate_span_id(self) -> int:
        wanted = _wanted_span_id.get()
        return wanted if wanted else super().generate_span_id()


def request_span_id(trace_id: str) -> int:
    """The OTel span id of the request span of opsgate trace `trace_id` (never 0)."""
    return int(hashlib.sha256(trace_id.encode()).hexdigest()[:16], 16) or 1


def _ns(epoch_seconds: float) -> int:
    return round(epoch_seconds * 1e9)


def _server(url: str | None) -> dict[str, AttributeValue]:
    if not url:
        return {}
    parts = urlsplit(url if "://" in url else f"//{url}")
    out: dict[str, AttributeValue] = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
    try:
        if parts.port:
            out["server.port"] = parts.port
    except ValueError:  # a port out of range: keep the address only
        pass
    return out


def _param_attributes(params: Mapping[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, attr in _REQUEST_PARAMS.items():
        value = params.get(key)
        if value is None or attr in out or isinstance(value, bool):
            continue
        if key == "stop":
            value = [value] if isinstance(value, str) else value
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[attr] = list(value)
        elif isinstance(value, int | float):
            out[attr] = value
    return out


def _content(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class GenAITracer:
    """Turns finished traces into OTel spans. Made by `create_tracer()`; a no-op when off."""

    def __init__(
        self,
        provider: TracerProvider | None,
        *,
        capture_content: bool = False,
    ) -> None:
        self.provider = provider
        self.capture_content = capture_content
        self._tracer = provider.get_tracer("opsgate", __version__) if provider else None
        self._propagator = TraceContextTextMapPropagator()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def emit(
        self,
        trace: TraceRecord,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        response_id: str | None = None,
        server_url: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        output: str | Sequence[Mapping[str, Any]] | None = None,
    ) -> otel_trace.SpanContext | None:
        """Emit the request span and its children; returns the request span's context.

        `headers`: the caller's request headers (a W3C `traceparent` continues its trace).
        `params`: the request body's parameters (temperature, max_tokens, top_p, ...).
        `server_url`: the served deployment's base URL. `messages` / `output`: the prompt and
        the completion (text or assistant messages), recorded only with content capture on.
        """
        if self._tracer is None:
            return None
        carrier = {k.lower(): v for k, v in (headers or {}).items()}
        parent_ctx = self._propagator.extract(carrier)
        operation = "embeddings" if trace.endpoint == "embeddings" else "chat"
        start = _ns(trace.started_at)
        end = start + int(max(trace.duration_ms, 0.0) * 1e6)
        token = _wanted_trace_id.set(
            int(trace.trace_id, 16) if _HEX32.match(trace.trace_id) else None
        )
        span_token = _wanted_span_id.set(request_span_id(trace.trace_id))
        try:
            span = self._tracer.start_span(
                f"{operation} {trace.model_requested}",
                context=parent_ctx,
                kind=SpanKind.CLIENT,
                start_time=start,
                attributes=self._request_attributes(trace, operation, params, server_url),
            )
        finally:
            _wanted_span_id.reset(span_token)
            _wanted_trace_id.reset(token)
        if self.capture_content:
            if messages is not None:
                span.set_attribute("gen_ai.input.messages", _content(input_messages(messages)))
            if output is not None:
                outs = output_messages(output, trace.finish_reason)
                span.set_attribute("gen_ai.output.messages", _content(outs))
        if response_id:
            span.set_attribute("gen_ai.response.id", response_id)
        if trace.status == "error":
            error = trace.error_type or "_OTHER"
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, trace.error_message or error))
        self._emit_children(trace, otel_trace.set_span_in_context(span), end)
        span.end(end_time=end)
        return span.get_span_context()

    def _request_attributes(
        self,
        trace: TraceRecord,
        operation: str,
        params: Mapping[str, Any] | None,
        server_url: str | None,
    ) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": trace.model_requested,
            "gen_ai.usage.input_tokens": trace.prompt_tokens,
            "opsgate.trace_id": trace.trace_id,
            "opsgate.attempts": trace.attempts,
            "opsgate.fallback": trace.fallback,
            "opsgate.cost_micros": trace.cost_micros,
            "opsgate.cost_usd": trace.cost_micros / 1_000_000,
            "opsgate.usage_estimated": trace.usage_estimated,
            "opsgate.http_status": trace.http_status,
        }
        if trace.provider:
            attrs["gen_ai.provider.name"] = PROVIDER_NAMES.get(trace.provider, trace.provider)
        if operation == "chat":
            attrs["gen_ai.usage.output_tokens"] = trace.completion_tokens
            attrs["gen_ai.request.stream"] = trace.stream
        if trace.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = trace.cached_tokens
        if trace.model_served:
            attrs["gen_ai.response.model"] = trace.model_served
        if trace.finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [trace.finish_reason]
        if trace.ttft_ms is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = trace.ttft_ms / 1000
        if trace.session_id:
            attrs["gen_ai.conversation.id"] = trace.session_id
        optional: dict[str, str | None] = {
            "opsgate.deployment": trace.deployment,
            "opsgate.cache": trace.cache,
            "opsgate.key_id": trace.key_id,
            "opsgate.team_id": trace.team_id,
            "opsgate.prompt_version": trace.prompt_version,
            "opsgate.experiment": trace.experiment,
            "opsgate.variant": trace.variant,
        }
        attrs.update({k: v for k, v in optional.items() if v})
        attrs.update(_param_attributes(params or {}))
        attrs.update(_server(server_url))
        return attrs

    def _emit_children(self, trace: TraceRecord, root: Context, trace_end: int) -> None:
        assert self._tracer is not None
        contexts: dict[str, Context] = {}
        for record in sorted(trace.spans, key=lambda s: s.started_at):
            parent = contexts.get(record.parent_id or "", root)
            span = self._tracer.start_span(
                record.name,
                context=parent,
                kind=SpanKind.CLIENT if record.name == "upstream_attempt" else SpanKind.INTERNAL,
                start_time=_ns(record.started_at),
                attributes=_child_attributes(record),
            )
            if record.status == "error":
                error = str(record.attributes.get("error") or "_OTHER")
                span.set_attribute("error.type", error)
                span.set_status(Status(StatusCode.ERROR, error))
            contexts[record.span_id] = otel_trace.set_span_in_context(span)
            end = _ns(record.started_at) + int(max(record.duration_ms, 0.0) * 1e6)
            span.end(end_time=min(end, trace_end))

    def emit_evaluation(
        self,
        name: str,
        *,
        trace_id: str | None,
        at: float,
        value: float | None = None,
        label: str | None = None,
        explanation: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        """One score as a `gen_ai.evaluation.result` event (GenAI semantic conventions).

        The event sits on a zero-length span (`evaluation {name}`) made a child of the scored
        request's span, which ended long before the score arrived: same trace id, and the
        request span's id derived from opsgate's trace id (`request_span_id`). A caller that
        sent its own `traceparent` put the request in its trace instead, so there the event
        lands in a trace of its own, named by `opsgate.trace_id`. Session scores (no trace)
        start a trace of their own.
        """
        if self._tracer is None:
            return
        context = Context()  # never the caller's current span
        if trace_id is not None and _HEX32.match(trace_id):
            parent = otel_trace.SpanContext(
                trace_id=int(trace_id, 16),
                span_id=request_span_id(trace_id),
                is_remote=True,
                trace_flags=otel_trace.TraceFlags(otel_trace.TraceFlags.SAMPLED),
            )
            context = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent))
        event: dict[str, AttributeValue] = {"gen_ai.evaluation.name": name}
        if value is not None:
            event["gen_ai.evaluation.score.value"] = value
        if label is not None:
            event["gen_ai.evaluation.score.label"] = label
        if explanation:
            event["gen_ai.evaluation.explanation"] = explanation
        extra = dict(attributes or {})
        if trace_id is not None:
            extra["opsgate.trace_id"] = trace_id
        moment = _ns(at)
        span = self._tracer.start_span(
            f"evaluation {name}",
            context=context,
            kind=SpanKind.INTERNAL,
            start_time=moment,
            attributes=extra,
        )
        span.add_event("gen_ai.evaluation.result", attributes=event, timestamp=moment)
        span.end(end_time=moment)

    def force_flush(self, timeout_ms: int = 30_000) -> bool:
        return self.provider.force_flush(timeout_ms) if self.provider else True

    def shutdown(self) -> None:
        """Flush and stop the exporter: call on graceful shutdown."""
        if self.provider is not None:
            self.provider.shutdown()


def _child_attributes(record: SpanRecord) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {"opsgate.span_id": record.span_id}
    a = record.attributes
    renames = {
        "deployment": "opsgate.deployment",
        "model": "gen_ai.request.model",
        "status_code": "http.response.status_code",
        "attempt": "opsgate.attempt",
    }
    for key, attr in renames.items():
        value = a.get(key)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            attrs[attr] = value
    if isinstance(a.get("provider"), str):
        attrs["gen_ai.provider.name"] = PROVIDER_NAMES.get(a["provider"], a["provider"])
    server = a.get("server_url") or a.get("base_url")
    attrs.update(_server(server if isinstance(server, str) else None))
    return attrs


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def create_tracer(
    *,
    exporter: SpanExporter | None = None,
    capture_content: bool | None = None,
    service_name: str = "opsgate",
) -> GenAITracer:
    """A tracer for the gateway.

    With `exporter` (tests pass an InMemorySpanExporter) spans go there as they end. Without
    it, spans go over OTLP http/protobuf when an OTLP endpoint is set in the environment, and
    the tracer is a no-op otherwise. `capture_content=None` follows the standard GenAI env flag.
    """
    capture = _env_flag(CAPTURE_ENV) if capture_content is None else capture_content
    if exporter is None and not any(os.environ.get(e) for e in ENDPOINT_ENVS):
        return GenAITracer(None, capture_content=capture)
    attributes: dict[str, AttributeValue] = {"service.version": __version__}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = service_name
    resource = Resource.create(attributes)
    provider = TracerProvider(resource=resource, id_generator=_OpsgateIdGenerator())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return GenAITracer(provider, capture_content=capture)
