"""The Grafana dashboard and Prometheus alerts only use metrics that the gateway exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from opsgate.routing.health import CircuitState
from opsgate.telemetry import create_metrics
from tests.fixtures.needs import need
from tests.telemetry.samples import chat_trace, embedding_trace, error_trace, writer_stats

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "opsgate.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"

PROMQL_WORDS = {
    # aggregations, functions and keywords used in PromQL
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "histogram_quantile",
    "label_values",
    "label_replace",
    "clamp_min",
    "clamp_max",
    "abs",
    "absent",
    "vector",
    "scalar",
    "time",
    "round",
    "ceil",
    "floor",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "inf",
    "nan",
}


def exported_names() -> set[str]:
    """Every name the registry exports once each kind of trace and pulled state is seen."""
    metrics = create_metrics(multiprocess=False)
    for trace in (chat_trace(), error_trace(), embedding_trace(), chat_trace(fallback=True)):
        metrics.observe(trace)
    metrics.record_writer_stats(
        writer_stats(
            queue_depth=1,
            queue_capacity=10,
            overflow_depth=1,
            written=1,
            spilled=1,
            dropped=1,
            rejected=1,
            replayed=1,
            failures=1,
            batches_written=1,
            batch_latency_avg_s=0.1,
            batch_latency_last_s=0.1,
        )
    )
    metrics.set_circuit_state("a", CircuitState.OPEN)
    return metrics.sample_names()


def metric_names_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, strings, ranges and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", text))
    # label_values(metric, label): the label is not a metric
    for match in re.finditer(r"label_values\(\s*[\w:]+\s*,\s*(\w+)\s*\)", expr):
        words.discard(match.group(1))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"e\d*", w)}


def dashboard_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            promql_key = key in ("expr", "definition") or (key == "query" and "(" in str(value))
            if promql_key and isinstance(value, str):
                yield value
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def test_promql_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(foo_bucket{model=~"$model",a="b"}'
        "[$__rate_interval]))) / on(x) group_left bar_total > 1e3"
    )
    assert metric_names_in(expr) == {"foo_bucket", "bar_total"}
    assert metric_names_in("label_values(opsgate_requests_total, model)") == {
        "opsgate_requests_total"
    }


def test_dashboard_is_valid_and_uses_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    names = exported_names()
    used: set[str] = set()
    for panel in panels:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"]
            used |= metric_names_in(target["expr"])
    for expr in dashboard_exprs(dashboard["templating"]):
        used |= metric_names_in(expr)
    assert used, "no metric names found"
    assert used <= names, f"unknown metrics: {sorted(used - names)}"
    # The dashboard covers the main families.
    for family in (
        "opsgate_requests_total",
        "opsgate_request_duration_seconds_bucket",
        "opsgate_time_to_first_token_seconds_bucket",
        "opsgate_tokens_total",
        "opsgate_cost_usd_total",
        "opsgate_upstream_errors_total",
        "opsgate_circuit_state",
        "opsgate_trace_queue_depth",
        "opsgate_cache_requests_total",
    ):
        assert family in used, family


def test_dashboard_quantiles_aggregate_by_le() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    quantiles = [e for e in dashboard_exprs(dashboard) if "histogram_quantile" in e]
    assert quantiles
    for expr in quantiles:
        assert re.search(r"by \((?:[\w ,]*\b)?le\b", expr), expr
        assert "_bucket{" in expr, expr


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert isinstance(doc, dict)
    assert set(doc) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in doc["groups"]:
        assert isinstance(group["name"], str)
        assert group["rules"]
        rules.extend(group["rules"])
    return rules


def test_alerts_have_the_right_structure_and_metrics() -> None:
    rules = alert_rules()
    names = exported_names()
    alerts = {rule["alert"] for rule in rules}
    assert {
        "OpsgateHighLatencyP95",
        "OpsgateHighErrorRate",
        "OpsgateCostBurn",
        "OpsgateTraceQueueBacklog",
    } <= alerts
    assert len(alerts) == len(rules)
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"])
        used = metric_names_in(rule["expr"])
        assert used, rule["alert"]
        assert used <= names, f"{rule['alert']}: unknown metrics {sorted(used - names)}"


PROMTOOL = shutil.which("promtool") or shutil.which(
    "promtool", path=str(Path(sys.executable).parent)
)


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    need(PROMTOOL is not None, "promtool not installed (make test fetches Debian's prometheus)")
    assert PROMTOOL is not None
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [PROMTOOL, "test", "rules", str(ALERTS_TEST)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
