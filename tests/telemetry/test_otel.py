from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from opsgate.telemetry import GenAITracer, create_tracer
from tests.telemetry.samples import STARTED, TRACE_ID, chat_trace, embedding_trace, error_trace

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
PARAMS = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 256, "stop": "END", "user": "u1"}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> GenAITracer:
    return create_tracer(exporter=exporter)


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def test_request_span_follows_genai_conventions(
    tracer: GenAITracer, exporter: InMemorySpanExporter
) -> None:
    ctx = tracer.emit(
        chat_trace(),
        params=PARAMS,
        response_id="chatcmpl-123",
        server_url="https://api.openai.com/v1",
    )
    assert ctx is not None
    (span,) = spans_by_name(exporter)["chat chat-default"]
    assert span.kind is SpanKind.CLIENT
    assert span.parent is None
    # Without a caller's traceparent, the OTel trace id is opsgate's trace id.
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.start_time == int(STARTED * 1e9)
    assert span.end_time is not None
    assert span.end_time - span.start_time == 1_500_000_000
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "chat-default"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.response.id"] == "chatcmpl-123"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert attrs["gen_ai.usage.input_tokens"] == 1200
    assert attrs["gen_ai.usage.output_tokens"] == 300
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert attrs["gen_ai.response.time_to_first_chunk"] == 0.25
    assert attrs["gen_ai.conversation.id"] == "sess-1"
    assert attrs["server.address"] == "api.openai.com"
    assert attrs["opsgate.trace_id"] == TRACE_ID
    assert attrs["opsgate.deployment"] == "openai-mini"
    assert attrs["opsgate.cache"] == "miss"
    assert attrs["opsgate.cost_micros"] == 435
    assert attrs["opsgate.cost_usd"] == pytest.approx(0.000435)
    assert "error.type" not in attrs
    assert span.status.status_code is StatusCode.UNSET


def test_attempts_are_child_spans(tracer: GenAITracer, exporter: InMemorySpanExporter) -> None:
    tracer.emit(chat_trace())
    spans = spans_by_name(exporter)
    (root,) = spans["chat chat-default"]
    failed, ok = sorted(spans["upstream_attempt"], key=lambda s: s.start_time or 0)
    for child in (failed, ok):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
        assert child.kind is SpanKind.CLIENT
    fattrs = dict(failed.attributes or {})
    assert fattrs["opsgate.deployment"] == "azure-mini"
    assert fattrs["error.type"] == "rate_limited"
    assert fattrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert fattrs["http.response.status_code"] == 429
    assert fattrs["server.address"] == "example-azure.invalid"
    assert fattrs["server.port"] == 8443
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(ok.attributes or {})["opsgate.deployment"] == "openai-mini"
    assert "error.type" not in dict(ok.attributes or {})
    assert ok.end_time is not None
    assert failed.end_time is not None
    assert failed.end_time - (failed.start_time or 0) == 400_000_000


def test_traceparent_continues_the_callers_trace(
    tracer: GenAITracer, exporter: InMemorySpanExporter
) -> None:
    headers = {"Traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    tracer.emit(chat_trace(), headers=headers)
    (root,) = spans_by_name(exporter)["chat chat-default"]
    assert format(root.context.trace_id, "032x") == CALLER_TRACE
    assert root.parent is not None
    assert format(root.parent.span_id, "016x") == CALLER_SPAN
    assert root.parent.is_remote
    assert dict(root.attributes or {})["opsgate.trace_id"] == TRACE_ID
    for child in spans_by_name(exporter)["upstream_attempt"]:
        assert format(child.context.trace_id, "032x") == CALLER_TRACE


def test_malformed_traceparent_starts_a_new_trace(
    tracer: GenAITracer, exporter: InMemorySpanExporter
) -> None:
    tracer.emit(chat_trace(), headers={"traceparent": "garbage"})
    (root,) = spans_by_name(exporter)["chat chat-default"]
    assert root.parent is None
    assert format(root.context.trace_id, "032x") == TRACE_ID


def test_error_sets_error_type_and_status(
    tracer: GenAITracer, exporter: InMemorySpanExporter
) -> None:
    tracer.emit(error_trace())
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {})["error.type"] == "timeout"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "upstream timed out after retries"


def test_embeddings_span(tracer: GenAITracer, exporter: InMemorySpanExporter) -> None:
    tracer.emit(embedding_trace(), params={"dimensions": 256})
    (span,) = exporter.get_finished_spans()
    assert span.name == "embeddings text-embedding-3-small"
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.usage.input_tokens"] == 8
    assert "gen_ai.usage.output_tokens" not in attrs
    assert attrs["gen_ai.embeddings.dimension.count"] == 256


MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": [{"type": "text", "text": "secret prompt"}]},
]


def test_content_is_off_by_default(
    tracer: GenAITracer, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    tracer.emit(chat_trace(), messages=MESSAGES, output="secret answer")
    for span in exporter.get_finished_spans():
        dumped = json.dumps(dict(span.attributes or {}), default=str)
        assert "secret" not in dumped
        assert not span.events


def test_content_when_opted_in(exporter: InMemorySpanExporter) -> None:
    tracer = create_tracer(exporter=exporter, capture_content=True)
    output = [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
        }
    ]
    tracer.emit(chat_trace(), messages=MESSAGES, output=output)
    (root,) = spans_by_name(exporter)["chat chat-default"]
    attrs = dict(root.attributes or {})
    inputs = json.loads(str(attrs["gen_ai.input.messages"]))
    assert inputs == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "secret prompt"}]},
    ]
    outputs = json.loads(str(attrs["gen_ai.output.messages"]))
    assert outputs == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": "x"}}
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_content_flag_from_the_environment(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    tracer = create_tracer(exporter=exporter)
    tracer.emit(chat_trace(), output="plain answer")
    (root,) = spans_by_name(exporter)["chat chat-default"]
    outputs = json.loads(str(dict(root.attributes or {})["gen_ai.output.messages"]))
    assert outputs[0]["parts"] == [{"type": "text", "content": "plain answer"}]
    assert outputs[0]["finish_reason"] == "stop"


def test_off_without_exporter_or_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tracer = create_tracer()
    assert not tracer.enabled
    assert tracer.emit(chat_trace()) is None
    tracer.shutdown()


def test_otlp_exporter_when_endpoint_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 (discard) on loopback: nothing is sent before shutdown drops the empty queue.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    tracer = create_tracer()
    assert tracer.enabled
    assert tracer.provider is not None
    tracer.shutdown()


def test_nested_spans_keep_their_parent(
    tracer: GenAITracer, exporter: InMemorySpanExporter
) -> None:
    from opsgate.trace import SpanRecord

    trace = chat_trace(
        spans=[
            SpanRecord("g", TRACE_ID, "input_guard", STARTED, 5.0),
            SpanRecord("p", TRACE_ID, "pii_scan", STARTED + 0.001, 2.0, parent_id="g"),
        ]
    )
    tracer.emit(trace)
    spans = spans_by_name(exporter)
    (guard,) = spans["input_guard"]
    (pii,) = spans["pii_scan"]
    assert guard.kind is SpanKind.INTERNAL
    assert pii.parent is not None
    assert pii.parent.span_id == guard.context.span_id
