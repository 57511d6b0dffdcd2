"""The experiments' admin API and CLI on a real gateway: a prompt experiment that finds a
winner and auto-promotes it (the label moves through the prompt registry, with audit entries
and an alert), a guardrail stop, pause/resume/stop, every bad input answered with a clear 4xx,
and promoting a stopped or losing variant refused with 409."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opsgate.cli.main import app as cli
from tests.conftest import GatewayFactory
from tests.experiments.helpers import (
    BASE,
    ask,
    experiment,
    http,
    report_until,
    score,
    sdk,
    start,
    variants,
)
from tests.fixtures.upstream import FakeUpstream, Status
from tests.prompts.helpers import system_text

pytestmark = pytest.mark.integration


def _prompt_chat(c: httpx.Client, i: int) -> httpx.Response:
    return c.post(
        "/v1/chat/completions",
        json={
            "model": "prompt:triage@production",
            "messages": [],
            "variables": {"ticket": f"t{i}"},
        },
    )


def test_a_prompt_experiment_finds_a_winner_and_auto_promotes_its_version(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], database_url: str
) -> None:
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    spec = experiment(
        name="triage-v2",
        traffic={"prompt": "triage", "label": "production"},
        unit="request",
        variants=[{"name": "v1", "prompt_version": 1}, {"name": "v2", "prompt_version": 2}],
        min_units=20,
        auto_promote=True,
        guardrails={"cost_increase": None, "error_rate_increase": None},
    )
    gw = start(gateway, alpha, beta, database_url)
    with http(gw) as c:
        for version in (1, 2):
            labels = ["production"] if version == 1 else []
            pushed = c.post(
                "/admin/v1/prompts",
                json={"name": "triage", **system_text(version), "labels": labels},
            )
            assert pushed.status_code == 201, pushed.text
        created = c.post(BASE, json=spec)
        assert created.status_code == 201, created.text
        assert (created.json()["status"], created.json()["decision"]) == ("running", "running")
        served: dict[str, list[str]] = {"v1": [], "v2": []}
        for i in range(70):
            resp = _prompt_chat(c, i)
            assert resp.status_code == 200, resp.text
            variant = resp.headers["x-opsgate-variant"]
            assert resp.headers["x-opsgate-experiment"] == "triage-v2"
            assert resp.headers["x-opsgate-prompt"] == f"triage@{variant[1]}"
            served[variant].append(resp.headers["x-opsgate-trace-id"])
        # the upstream got the rendered version of each variant
        systems = [r.body["messages"][0]["content"] for r in alpha.requests]
        assert sum(s.startswith("[v2]") for s in systems) == len(served["v2"])
        for trace_id in served["v1"]:
            score(c, trace_id, False)
        for trace_id in served["v2"]:
            score(c, trace_id, True)
        report = report_until(c, "triage-v2", lambda r: r["status"] == "promoted")
        assert report["decision"] == "winner: v2" and report["promoted"] == "v2"
        assert [e["kind"] for e in report["log"]] == ["created", "decision", "promoted"]
        label = c.get("/admin/v1/prompts/triage", params={"label": "production"}).json()
        assert label["version"] == 2
        actions = [e["action"] for e in c.get("/admin/v1/audit").json()["data"]]
        for action in ("experiments.create", "experiments.decision", "experiments.promote"):
            assert action in actions
        assert "prompts.label_move" in actions
        kinds = [a["kind"] for a in c.get("/admin/v1/alerts").json()["data"]]
        assert "experiment.promoted" in kinds and "experiment.decision" in kinds
        # promoted through the label: requests render v2 and are no longer in the experiment
        after = _prompt_chat(c, 99)
        assert after.headers["x-opsgate-prompt"] == "triage@2"
        assert "x-opsgate-variant" not in after.headers
        again = c.post(f"{BASE}/triage-v2/promote", json={"variant": "v1"})
        assert again.status_code == 409, again.text
        # the trace keeps the label the request named, and the variant
        trace = c.get(f"/admin/v1/traces/{served['v2'][0]}").json()
        assert (trace["prompt_label"], trace["prompt_version"], trace["variant"]) == (
            "production",
            "2",
            "v2",
        )


def test_a_guardrail_stops_a_variant_and_it_cannot_be_promoted(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    beta.script(*[Status(500)] * 200)  # variant b's model fails every time
    spec = experiment(
        unit="request",
        min_units=10,
        guardrails={"error_rate_increase": 0.05, "cost_increase": None},
    )
    gw = start(gateway, alpha, beta, router={"retries": 0})
    with http(gw) as c:
        assert c.post(BASE, json=spec).status_code == 201
        codes = [
            c.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
            ).status_code
            for _ in range(60)
        ]
        assert 200 in codes and any(code >= 500 for code in codes)
        report = report_until(c, "exp1", lambda r: r["status"] == "stopped")
        assert report["decision"] == "stopped by guardrail"
        assert report["decision_detail"]["variant"] == "b"
        [guard] = [g for g in variants(report)["b"]["guardrails"] if g["name"] == "error_rate"]
        assert guard["status"] == "harm"
        refused = c.post(f"{BASE}/exp1/promote", json={"variant": "b"})
        assert refused.status_code == 409 and "guardrail" in refused.json()["error"]["message"]
        # stopped: requests are served without a variant
        resp = c.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert resp.status_code == 200 and "x-opsgate-variant" not in resp.headers


def _error(resp: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = resp.json()["error"]
    return data


def test_bad_definitions_and_state_changes_are_refused(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = start(gateway, upstreams["alpha"], upstreams["beta"])
    with http(gw) as c:
        unknown = c.post(BASE, json=experiment(metric="nope"))
        assert unknown.status_code == 400 and "unknown metric 'nope'" in _error(unknown)["message"]
        comment = experiment(metric="thumbs", traffic={"model": "no-such-model"})
        target = c.post(BASE, json=comment)
        assert target.status_code == 400 and _error(target)["param"] == "traffic.model"
        weights = experiment(variants=[{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.6}])
        bad = c.post(BASE, json=weights)
        assert bad.status_code == 422 and "sum to 1" in _error(bad)["message"]
        assert c.post(BASE, json=experiment()).status_code == 201
        overlap = c.post(BASE, json=experiment(name="exp2"))
        assert overlap.status_code == 400
        message = _error(overlap)["message"]
        assert "'exp1'" in message and "'exp2'" in message and "exclusion_group" in message
        dup = c.post(BASE, json=experiment())
        assert dup.status_code == 409
        assert c.get(f"{BASE}/nope").status_code == 404
        assert c.post(f"{BASE}/exp1/resume").status_code == 409  # it is running
        assert c.post(f"{BASE}/exp1/pause").json()["status"] == "paused"
        with sdk(gw) as client:
            _, exp, variant = ask(client, "user-1")
        assert (exp, variant) == ("", "")  # paused: no variant
        assert c.post(f"{BASE}/exp1/resume").json()["status"] == "running"
        wrong = c.post(f"{BASE}/exp1/promote", json={"variant": "zzz"})
        assert wrong.status_code == 400
        assert c.post(f"{BASE}/exp1/stop").json()["status"] == "stopped"
        assert c.post(f"{BASE}/exp1/stop").status_code == 409
        assert c.get(BASE, params={"bogus": "1"}).status_code == 400
        log = c.get(f"{BASE}/exp1").json()["log"]
        assert [e["kind"] for e in log] == ["created", "paused", "resumed", "stopped"]


def test_the_cli_creates_lists_shows_and_stops(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], tmp_path: Any
) -> None:
    gw = start(gateway, upstreams["alpha"], upstreams["beta"])
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: exp1\ntraffic: {model: gpt-4o-mini}\nunit: end_user\n"
        "variants: [{name: a}, {name: b, model: m2}]\nmetric: thumbs\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    env = {"OPSGATE_URL": gw.base, "COLUMNS": "200"}
    made = runner.invoke(cli, ["experiments", "create", str(path)], env=env)
    assert made.exit_code == 0, made.output
    with sdk(gw) as client:
        for i in range(6):
            ask(client, f"u{i}")
    time.sleep(0.5)
    listed = runner.invoke(cli, ["experiments", "list"], env=env)
    assert listed.exit_code == 0 and "exp1" in listed.output and "running" in listed.output
    shown = runner.invoke(cli, ["experiments", "show", "exp1"], env=env)
    assert shown.exit_code == 0 and "(control)" in shown.output and "created" in shown.output
    stopped = runner.invoke(cli, ["experiments", "stop", "exp1"], env=env)
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    again = runner.invoke(cli, ["experiments", "stop", "exp1"], env=env)
    assert again.exit_code == 1
