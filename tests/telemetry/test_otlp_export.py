"""OTLP http/protobuf export, end to end against a tiny collector on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from opsgate.telemetry import create_tracer
from tests.telemetry.samples import TRACE_ID, chat_trace


class Collector(ThreadingHTTPServer):
    requests: list[tuple[str, str, bytes]]


class Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.requests.append((self.path, self.headers.get("content-type") or "", body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(("127.0.0.1", 0), Handler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_spans_reach_an_otlp_collector(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = collector.server_address[:2]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{host!s}:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-under-test")
    tracer = create_tracer()
    tracer.emit(chat_trace())
    assert tracer.force_flush(10_000)
    tracer.shutdown()

    assert collector.requests
    path, content_type, body = collector.requests[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "gateway-under-test"
    spans = [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert sorted(s.name for s in spans) == [
        "chat chat-default",
        "upstream_attempt",
        "upstream_attempt",
    ]
    assert {s.trace_id.hex() for s in spans} == {TRACE_ID}
