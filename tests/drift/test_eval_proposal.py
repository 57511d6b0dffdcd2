"""An accepted `eval_run` proposal starts its eval run through the real gateway: the dataset of
the drifted traffic is made, the run targets the model the traffic asked for, its calls are
made with the accepting caller's key, and it completes over every row; without a key (the
dashboard) the dataset is made and the outcome says how to start the run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.access.helpers import MASTER
from tests.drift.conftest import DriftGw, get, questions
from tests.evals.test_admin_api import wait_done
from tests.fixtures._steps import Reply
from tests.ui.helpers import Clients

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
HOUR = 3600.0
REFUSAL = "I'm sorry, but I can't help with that."


def refusals_then_monitor(gw: DriftGw, name: str) -> dict[str, Any]:
    """40 plain answers two hours ago, 40 now of which a quarter refuse; a stats monitor on
    refusals that proposes an eval run; its (drift) result."""
    quora = questions("quora_question_pairs")
    t0 = time.time()
    for q in quora[:40]:
        gw.chat(q)
    gw.wait_samples(40)
    gw.backdate(2 * HOUR)
    for i, q in enumerate(quora[40:80]):
        gw.upstream.script(Reply(REFUSAL if i % 4 == 0 else "A plain answer."))
        gw.chat(q)
    gw.wait_samples(80)
    spec = {
        "name": name,
        "kind": "stats",
        "window": HOUR,
        "reference": {"type": "fixed", "start": t0 - 2 * HOUR - 60, "end": time.time() - HOUR},
        "statistics": ["refusal"],
        "proposal": "eval_run",
    }
    assert gw.admin.call("POST", "/admin/v1/drift/monitors", spec).status_code == 201
    ran = gw.admin.ok("POST", "/admin/v1/drift/run", {"monitors": [name]})["data"][0]
    assert ran["state"] == "drift", ran
    return ran


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_accepting_an_eval_run_proposal_starts_the_run(
    database_url: str, drift_gateway: Any
) -> None:
    gw: DriftGw = drift_gateway(database_url)
    refusals_then_monitor(gw, "refusals")
    proposal = get(gw.admin, "/admin/v1/drift/proposals", status="open")["data"][0]
    assert proposal["kind"] == "eval_run" and proposal["detail"]["eval"]["model"] is None
    calls_before = len(gw.upstream.requests)

    accepted = gw.admin.ok("POST", f"/admin/v1/drift/proposals/{proposal['id']}/accept")
    outcome = accepted["outcome"]
    assert accepted["status"] == "accepted" and outcome["eval_model"] == "gpt-4o-mini"
    run = wait_done(gw.admin, outcome["eval_run_id"], within=60)
    assert run["status"] == "completed" and run["rows_done"] == 40, run
    assert run["spec"]["dataset"]["name"] == outcome["dataset_id"]
    assert [t["model"] for t in run["spec"]["targets"]] == ["gpt-4o-mini"]
    assert len(gw.upstream.requests) - calls_before == 40  # the run's calls went upstream
    results = get(gw.admin, f"/admin/v1/evals/{run['id']}/results")["data"]
    refused = [r for r in results if r["scores"]["refusal"]["value"] == 0.0]
    assert len(results) == 40 and refused == []  # the upstream answers plainly now
    audit = get(gw.admin, "/admin/v1/audit", action="drift.proposal.accept")["data"]
    assert audit[0]["detail"]["eval_run_id"] == run["id"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_key_the_dataset_is_made_and_the_run_named(
    database_url: str, drift_gateway: Any
) -> None:
    gw: DriftGw = drift_gateway(database_url)
    refusals_then_monitor(gw, "refusals")
    proposal = get(gw.admin, "/admin/v1/drift/proposals", status="open")["data"][0]
    clients = Clients(gw.server.base)
    try:  # the dashboard's Accept button: a session, no API key
        http, csrf = clients.logged_in(MASTER)
        path = f"/ui/drift/proposals/{proposal['id']}/accept"
        assert http.post(path, data={"csrf_token": csrf}).status_code == 303
    finally:
        clients.close()
    done = gw.admin.ok("GET", "/admin/v1/drift/proposals", params={"status": "accepted"})
    outcome = done["data"][0]["outcome"]
    assert "eval_run_id" not in outcome and "no API key" in outcome["eval_not_started"]
    assert outcome["eval"].startswith(f"opsgate eval run --dataset {outcome['dataset']} ")
    assert get(gw.admin, f"/admin/v1/datasets/{outcome['dataset_id']}")["rows"] == 40
    assert get(gw.admin, "/admin/v1/evals")["data"] == []
