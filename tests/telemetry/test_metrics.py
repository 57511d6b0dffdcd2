from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsgate.routing.health import CircuitState
from opsgate.telemetry import (
    LATENCY_BUCKETS,
    Metrics,
    WriterSnapshot,
    create_metrics,
    metrics_response,
)
from tests.telemetry.samples import chat_trace, embedding_trace, error_trace, writer_stats

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def metrics() -> Metrics:
    return create_metrics(multiprocess=False)


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_observe_counts_one_request_from_its_trace(metrics: Metrics) -> None:
    metrics.observe(chat_trace())
    route = {"model": "chat-default", "deployment": "openai-mini"}
    assert (
        value(metrics, "opsgate_requests_total", **route, endpoint="chat", status="ok", code="200")
        == 1
    )
    assert value(metrics, "opsgate_request_duration_seconds_count", **route, stream="true") == 1
    assert value(metrics, "opsgate_request_duration_seconds_sum", **route, stream="true") == 1.5
    assert value(metrics, "opsgate_time_to_first_token_seconds_sum", **route) == 0.25
    assert value(metrics, "opsgate_tokens_total", **route, direction="input") == 1200
    assert value(metrics, "opsgate_tokens_total", **route, direction="output") == 300
    assert value(metrics, "opsgate_tokens_total", **route, direction="cached") == 1000
    assert value(metrics, "opsgate_cost_usd_total", **route) == pytest.approx(0.000435)
    assert (
        value(
            metrics, "opsgate_upstream_errors_total", deployment="azure-mini", type="rate_limited"
        )
        == 1
    )
    assert (
        value(
            metrics, "opsgate_upstream_errors_total", deployment="openai-mini", type="rate_limited"
        )
        is None
    )
    assert value(metrics, "opsgate_retries_total", model="chat-default") == 1
    assert value(metrics, "opsgate_fallbacks_total", model="chat-default") is None
    assert value(metrics, "opsgate_cache_requests_total", model="chat-default", result="miss") == 1


def test_buckets_cover_llm_latency() -> None:
    assert LATENCY_BUCKETS[0] == 0.005
    assert LATENCY_BUCKETS[-1] == 120
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_error_without_attempt_spans_still_counts_an_upstream_error(metrics: Metrics) -> None:
    metrics.observe(error_trace())
    assert (
        value(
            metrics,
            "opsgate_requests_total",
            model="chat-default",
            deployment="openai-mini",
            endpoint="chat",
            status="error",
            code="504",
        )
        == 1
    )
    assert (
        value(metrics, "opsgate_upstream_errors_total", deployment="openai-mini", type="timeout")
        == 1
    )
    # Not streamed: no TTFT observation.
    assert (
        value(
            metrics,
            "opsgate_time_to_first_token_seconds_count",
            model="chat-default",
            deployment="openai-mini",
        )
        is None
    )


def test_unknown_model_does_not_create_a_series_per_name(metrics: Metrics) -> None:
    for name in ("typo-1", "typo-2"):
        trace = error_trace()
        trace.model_requested, trace.http_status, trace.deployment = name, 404, None
        trace.attempts, trace.error_type = 0, "model_not_found"
        metrics.observe(trace)
    assert (
        value(
            metrics,
            "opsgate_requests_total",
            model="unknown",
            deployment="none",
            endpoint="chat",
            status="error",
            code="404",
        )
        == 2
    )
    assert "typo-1" not in metrics.render()[0].decode()


def test_fallback_and_embeddings(metrics: Metrics) -> None:
    metrics.observe(chat_trace(fallback=True, attempts=3))
    metrics.observe(embedding_trace())
    assert value(metrics, "opsgate_fallbacks_total", model="chat-default") == 1
    assert value(metrics, "opsgate_retries_total", model="chat-default") == 2
    assert (
        value(
            metrics,
            "opsgate_cache_requests_total",
            model="text-embedding-3-small",
            result="hit-exact",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "opsgate_tokens_total",
            model="text-embedding-3-small",
            deployment="openai-embed",
            direction="output",
        )
        is None
    )


def test_circuit_state_gauge(metrics: Metrics) -> None:
    metrics.set_circuit_state("a", CircuitState.OPEN)
    metrics.set_circuit_state("b", CircuitState.HALF_OPEN)
    metrics.set_circuit_state("c", "closed")
    assert value(metrics, "opsgate_circuit_state", deployment="a") == 2
    assert value(metrics, "opsgate_circuit_state", deployment="b") == 1
    assert value(metrics, "opsgate_circuit_state", deployment="c") == 0
    with pytest.raises(ValueError, match="unknown circuit state"):
        metrics.set_circuit_state("d", "melted")


def test_pulled_state_is_refreshed_on_render(metrics: Metrics) -> None:
    stats = [
        writer_stats(
            queue_depth=5,
            queue_capacity=100,
            written=10,
            spilled=1,
            batches_written=2,
            batch_latency_avg_s=0.25,
            batch_latency_last_s=0.2,
        )
    ]
    circuits = {"a": CircuitState.CLOSED}
    metrics.watch_writer(lambda: stats[-1])
    metrics.watch_circuits(lambda: circuits)
    body, content_type = metrics_response(metrics)
    assert content_type.startswith("text/plain")
    assert b"opsgate_trace_queue_depth 5.0" in body
    assert value(metrics, "opsgate_traces_written_total") == 10
    assert value(metrics, "opsgate_trace_batch_seconds_total") == 0.5
    assert value(metrics, "opsgate_trace_last_batch_seconds") == 0.2
    assert value(metrics, "opsgate_trace_store_healthy") == 1
    assert value(metrics, "opsgate_circuit_state", deployment="a") == 0

    stats.append(
        writer_stats(
            queue_capacity=100,
            overflow_depth=3,
            written=25,
            spilled=1,
            dropped=2,
            rejected=1,
            replayed=4,
            failures=6,
            batches_written=4,
            batch_latency_avg_s=0.25,
            store_healthy=False,
        )
    )
    circuits["a"] = CircuitState.OPEN
    metrics.refresh()
    assert value(metrics, "opsgate_trace_queue_depth") == 0
    assert value(metrics, "opsgate_trace_overflow_depth") == 3
    assert value(metrics, "opsgate_trace_store_healthy") == 0
    assert value(metrics, "opsgate_traces_written_total") == 25
    assert value(metrics, "opsgate_traces_spilled_total") == 1
    assert value(metrics, "opsgate_traces_dropped_total") == 2
    assert value(metrics, "opsgate_traces_rejected_total") == 1
    assert value(metrics, "opsgate_traces_replayed_total") == 4
    assert value(metrics, "opsgate_trace_store_failures_total") == 6
    assert value(metrics, "opsgate_trace_batches_total") == 4
    assert value(metrics, "opsgate_trace_batch_seconds_total") == 1.0
    assert value(metrics, "opsgate_circuit_state", deployment="a") == 2

    # The writer restarted: its counts start again from zero and are added, not subtracted.
    stats.append(writer_stats(written=3))
    metrics.refresh()
    assert value(metrics, "opsgate_traces_written_total") == 28


def test_a_failing_source_does_not_break_the_scrape(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> WriterSnapshot:
        raise RuntimeError("boom")

    metrics.watch_writer(broken)
    body, _ = metrics.render()
    assert b"opsgate_trace_queue_depth" in body
    assert "writer stats source failed" in caplog.text


def test_openmetrics_when_asked(metrics: Metrics) -> None:
    metrics.observe(chat_trace())
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_fresh_metrics_are_independent() -> None:
    one, two = create_metrics(multiprocess=False), create_metrics(multiprocess=False)
    one.observe(chat_trace())
    assert two.registry.get_sample_value("opsgate_retries_total", {"model": "chat-default"}) is None


def test_multiprocess_needs_the_env_before_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        create_metrics()
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert create_metrics().multiprocess_dir is None


WORKER = textwrap.dedent(
    """
    import os, sys
    from opsgate.telemetry import create_metrics
    from tests.telemetry.samples import chat_trace, writer_stats
    m = create_metrics()
    assert m.multiprocess_dir
    for _ in range(int(sys.argv[1])):
        m.observe(chat_trace())
    m.record_writer_stats(writer_stats(queue_depth=int(sys.argv[2]), written=int(sys.argv[1])))
    m.set_circuit_state("azure-mini", sys.argv[3])
    print(os.getpid())
    """
)

SCRAPER = textwrap.dedent(
    """
    import sys
    from opsgate.telemetry import create_metrics, mark_process_dead
    for pid in sys.argv[1:]:
        mark_process_dead(int(pid))
    sys.stdout.write(create_metrics().render()[0].decode())
    """
)


def _run(code: str, env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def _sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in output")


def test_multiprocess_workers_add_up(tmp_path: Path) -> None:
    from opsgate.telemetry import prepare_multiprocess_dir

    (tmp_path / "stale.db").write_bytes(b"x")
    prepare_multiprocess_dir(str(tmp_path))
    assert not list(tmp_path.iterdir())
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pid_a = _run(WORKER, env, "2", "3", "open").strip()
    _run(WORKER, env, "3", "4", "closed")

    text = _run(SCRAPER, env)
    key = 'opsgate_requests_total{code="200",deployment="openai-mini",endpoint="chat",'
    assert _sample(text, key) == 5
    assert _sample(text, "opsgate_tokens_total{") > 0
    assert _sample(text, "opsgate_request_duration_seconds_count{") == 5
    assert _sample(text, "opsgate_traces_written_total") == 5
    assert _sample(text, "opsgate_trace_queue_depth") == 7  # livesum
    assert _sample(text, 'opsgate_circuit_state{deployment="azure-mini"}') == 2  # livemax

    # Worker A is gone: its gauges leave, its counts stay.
    text = _run(SCRAPER, env, pid_a)
    assert _sample(text, key) == 5
    assert _sample(text, "opsgate_trace_queue_depth") == 4
    assert _sample(text, 'opsgate_circuit_state{deployment="azure-mini"}') == 0
