"""Tuning jobs through the admin API of a real gateway (SQLite), training the tiny Llama for
real in the worker process: a job checked, queued, trained, its adapter registered with its
lineage and loaded to answer; the role table; bad input (400/404/409); cancel, resume and a
restart that resumes from the checkpoint; an erased end user taints the job and adapter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.needs import import_or_need

import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
import_or_need("peft", "the tune extra (peft)")

from opsgate.tuning.lora import load_adapter, load_base  # noqa: E402
from tests.access.helpers import MASTER, Client, World, seed  # noqa: E402
from tests.fixtures.gateway import GatewayServer, make_config  # noqa: E402
from tests.tuning.jobs import ADAPTERS, FINAL, JOBS, wait_job  # noqa: E402
from tests.tuning.tiny import COLOURS, TOY_SETTINGS, answer_probability, tiny_base  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated"),
]


def _config(tmp: Path) -> Any:
    return make_config(
        {
            "settings": {
                "database_url": f"sqlite+aiosqlite:///{tmp / 'gw.db'}",
                "master_key": MASTER,
            },
            "traces": {"flush_interval": 0.05, "store_bodies": "full"},
            "tuning": {"folder": str(tmp / "tuning"), "poll": 0.1, "threads": 1},
        }
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Client, World]]:
    with GatewayServer(_config(tmp_path)) as gw:
        admin = Client(gw.base, MASTER, gw)
        yield admin, seed(admin)


def opsgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    run = [sys.executable, "-m", "opsgate", *args]
    return subprocess.run(run, capture_output=True, text=True, timeout=120, env=env, check=False)


def _rows(repeat: int = 4) -> list[dict[str, Any]]:
    rows = []
    for n in range(repeat):
        for thing, colour in COLOURS.items():
            # Distinct questions (the export drops exact duplicates): 1 to 4 question marks.
            question = f"what colour is the {thing} " + " ".join("?" * (n + 1))
            messages = [{"role": "user", "content": question}]
            rows.append(
                {"messages": messages, "output": f"the {thing} is {colour}", "end_user": f"u{n}"}
            )
    return rows


def _dataset(client: Client, name: str, rows: list[dict[str, Any]]) -> str:
    made = client.ok("POST", "/admin/v1/datasets", {"name": name, "rows": rows})
    return str(made["dataset"]["id"])


def _error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    if code is not None:
        assert err["code"] == code, err
    return err


def test_a_job_trains_registers_an_adapter_and_is_tainted_by_an_erasure(
    world: tuple[Client, World], tmp_path: Path
) -> None:
    admin, w = world
    lead = admin.as_(w.keys["team_admin:a"])
    base = tiny_base(tmp_path / "base")
    dataset = _dataset(lead, "colours", _rows())
    body = {
        "dataset": "colours",
        "base": str(base),
        "adapter": "colours-a",
        "settings": TOY_SETTINGS,
    }
    made = lead.call("POST", JOBS, body)
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["status"] in ("queued", "running") and job["team_id"] == "team-a"
    assert job["examples"]["train"] + job["examples"]["validation"] == len(_rows())

    done = wait_job(lead, job["id"], lambda j: j["status"] in FINAL)
    assert done["status"] == "succeeded", done
    assert done["steps"] == done["total_steps"] == len(done["losses"]) > 10
    assert sum(done["losses"][-3:]) < sum(done["losses"][:3]) / 2
    assert done["metrics"]["validation_after"] < done["metrics"]["validation_before"]
    assert done["metrics"]["cpu_seconds"] > 0
    # Base vs adapter on the validation split, with the default scorers (tests/tuning/
    # test_evaluate.py checks the figures against the answers).
    evaluation = done["metrics"]["evaluation"]
    assert evaluation["n"] == job["examples"]["validation"], evaluation
    assert set(evaluation["scorers"]) == {"exact", "contains", "overlap"}
    for figures in evaluation["scorers"].values():
        assert 0 <= figures["base"] <= 1 and 0 <= figures["adapter"] <= 1, figures
        assert figures["scored"] == evaluation["n"] and figures["failed"] == 0
    assert len(evaluation["examples"]) == min(3, evaluation["n"])
    # The data card: on the job, next to the weights and in the registry, the same.
    card = done["card"]
    assert card["job_id"] == job["id"] and card["dataset"]["id"] == dataset
    assert card["counts"]["train"] == job["examples"]["train"]
    assert card["tokens"]["train"]["prompt"] > 0 and card["base"]["fingerprint"]

    adapter = lead.ok("GET", f"{ADAPTERS}/colours-a")
    assert adapter["metrics"]["evaluation"] == evaluation and adapter["card"] == card
    assert json.loads((Path(adapter["path"]) / "data-card.json").read_text()) == card
    # The job's log: the worker's lines and events, numbered, read on from a number.
    logs = lead.ok("GET", f"{JOBS}/{job['id']}/logs")
    lines = [line["line"] for line in logs["data"]]
    assert [line["seq"] for line in logs["data"]] == list(range(1, len(lines) + 1))
    assert any(line.startswith("step ") for line in lines), lines
    assert any('"event":"done"' in line for line in lines), lines
    later = lead.ok("GET", f"{JOBS}/{job['id']}/logs", params={"after": str(len(lines) - 2)})
    assert [line["line"] for line in later["data"]] == lines[-2:]
    assert later["last"] == logs["last"] == len(lines) and logs["status"] == "succeeded"
    assert adapter["job_id"] == job["id"] and adapter["dataset_id"] == dataset
    assert (
        adapter["dataset_version"] == 1 and adapter["base_fingerprint"] == job["base_fingerprint"]
    )
    assert not adapter["tainted"]
    tokenizer, model = load_adapter(base, Path(adapter["path"]))
    _, plain = load_base(base)
    # The registered weights are the trained ones: the colours are the adapter's answers (the
    # split is random per dataset, so one thing's questions may all have been held back).
    learned = []
    for thing, colour in COLOURS.items():
        p_adapter, top = answer_probability(tokenizer, model, thing, colour)
        p_base, _ = answer_probability(tokenizer, plain, thing, colour)
        learned.append(top == colour and p_adapter > 5 * p_base)
    assert sum(learned) >= 4, learned

    # The CLI reads the same job and registry.
    env = {"OPSGATE_URL": admin.base, "OPSGATE_ADMIN_KEY": w.keys["team_admin:a"], "PATH": ""}
    shown = opsgate("tuning", "show", job["id"], env=env)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and "loss " in shown.stdout
    assert "evaluation on" in shown.stdout and "data card: colours@1" in shown.stdout
    followed = opsgate("tuning", "logs", job["id"], "--follow", env=env)
    assert followed.returncode == 0 and followed.stdout.count("\n") == len(lines)
    listed = json.loads(opsgate("tuning", "adapters", "--json", env=env).stdout)
    table = opsgate("tuning", "adapters", env={**env, "COLUMNS": "200"})
    exact = evaluation["scorers"]["exact"]
    assert f"{exact['base']:.3f} → {exact['adapter']:.3f}" in table.stdout, table.stdout
    assert [a["name"] for a in listed["data"]] == ["colours-a"]
    refused = opsgate("tuning", "cancel", job["id"], env=env)
    assert refused.returncode != 0 and "(409)" in refused.stderr

    # Scope: team B neither sees nor touches team A's job; a viewer reads, a member does not.
    other = admin.as_(w.keys["team_admin:b"])
    _error(other.call("GET", f"{JOBS}/{job['id']}"), 404, "job_not_found")
    _error(other.call("GET", f"{ADAPTERS}/colours-a"), 404, "adapter_not_found")
    _error(other.call("GET", f"{JOBS}/{job['id']}/logs"), 404, "job_not_found")
    bad_after = lead.call("GET", f"{JOBS}/{job['id']}/logs", params={"after": "-1"})
    _error(bad_after, 400, "invalid_parameter")
    assert other.ok("GET", JOBS)["data"] == [] and other.ok("GET", ADAPTERS)["data"] == []
    viewer = admin.as_(w.keys["viewer:a"])
    assert [j["id"] for j in viewer.ok("GET", JOBS)["data"]] == [job["id"]]
    _error(viewer.call("POST", f"{JOBS}/{job['id']}/cancel"), 403, "permission_denied")
    _error(admin.as_(w.keys["member:a"]).call("GET", JOBS), 403, "permission_denied")
    _error(lead.call("POST", f"{JOBS}/{job['id']}/cancel"), 409, "job_not_cancellable")
    _error(lead.call("POST", JOBS, body), 409, "adapter_exists")

    # Erasing an end user whose rows trained the adapter taints the job and the adapter.
    export = admin.ok("GET", "/admin/v1/end-users/u1/export")
    assert [t["id"] for t in export["data"]["tuning"]] == [job["id"]]
    receipt = admin.ok("DELETE", "/admin/v1/end-users/u1")
    assert json.dumps(receipt).count("tuning_jobs_tainted") == 1
    assert lead.ok("GET", f"{JOBS}/{job['id']}")["tainted"]
    assert lead.ok("GET", f"{ADAPTERS}/colours-a")["tainted"]
    # The evaluation's example rows (validation prompts and answers) go with the erasure.
    assert '"tuning_evaluation_examples": 2' in json.dumps(receipt), receipt
    assert lead.ok("GET", f"{JOBS}/{job['id']}")["metrics"]["evaluation"]["examples"] == []
    after_erasure = lead.ok("GET", f"{ADAPTERS}/colours-a")["metrics"]["evaluation"]
    assert after_erasure["examples"] == [] and after_erasure["scorers"] == evaluation["scorers"]
    assert admin.ok("GET", "/admin/v1/end-users/u1/export")["data"]["tuning"] == []
    audit = admin.ok("GET", "/admin/v1/audit", params={"action": "tuning.job.finish"})["data"]
    assert [e["detail"]["status"] for e in audit] == ["succeeded"]

    deleted = lead.ok("DELETE", f"{ADAPTERS}/colours-a")
    assert deleted["name"] == "colours-a" and not Path(adapter["path"]).exists()
    _error(lead.call("GET", f"{ADAPTERS}/colours-a"), 404, "adapter_not_found")


def test_bad_input_is_refused_before_a_job_is_queued(
    world: tuple[Client, World], tmp_path: Path
) -> None:
    admin, w = world
    lead = admin.as_(w.keys["team_admin:a"])
    base = tiny_base(tmp_path / "base")
    _dataset(lead, "colours", _rows())
    _dataset(lead, "tiny", _rows()[:2])
    _dataset(admin.as_(w.keys["team_admin:b"]), "theirs", _rows())
    ok = {"dataset": "colours", "base": str(base), "adapter": "a1"}

    def post(**change: Any) -> Any:
        return lead.call("POST", JOBS, {**ok, **change})

    _error(post(dataset="nope"), 404, "dataset_not_found")
    _error(post(dataset="theirs"), 404, "dataset_not_found")  # team B's, as if unknown
    _error(post(dataset_version=7), 404, "version_not_found")
    _error(post(base=str(tmp_path / "missing")), 400, "invalid_base")
    evil = tiny_base(tmp_path / "evil")
    (evil / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    assert "trust_remote_code" in _error(post(base=str(evil)), 400, "invalid_base")["message"]
    assert "at least 4" in _error(post(dataset="tiny"), 400, "invalid_training_data")["message"]
    assert post(adapter="bad name!").status_code in (400, 422)
    assert post(settings={"rank": 0}).status_code in (400, 422)
    assert post(settings={"nope": 1}).status_code in (400, 422)
    assert post(team_id="team-b").status_code == 403
    for scorers in (["nope"], ["judge"], [{"type": "embedding", "embedder": "gateway"}]):
        err = _error(post(evaluation={"scorers": scorers}), 400, "invalid_scorer")
        assert err["param"] == "evaluation.scorers", err
    env = {"OPSGATE_URL": admin.base, "OPSGATE_ADMIN_KEY": w.keys["team_admin:a"], "PATH": ""}
    cli = ["tuning", "create", "--dataset", "colours", "--base", str(base), "--adapter", "a2"]
    refused = opsgate(*cli, "--scorer", "exact", "--scorer", "judge", env=env)
    assert refused.returncode != 0 and "(400)" in refused.stderr, refused.stderr
    assert "cannot score a tuning job" in refused.stderr
    _error(lead.call("POST", f"{JOBS}/tj_unknown/cancel"), 404, "job_not_found")
    _error(lead.call("GET", JOBS, params={"status": "nope"}), 400, "invalid_parameter")
    assert lead.ok("GET", JOBS)["data"] == []  # nothing was queued
    assert not any((tmp_path / "tuning").glob("tj_*"))  # and no folder left behind


def _long_job(admin: Client, base: Path, epochs: int) -> dict[str, Any]:
    """A job long enough to be stopped mid-way even on a fast machine."""
    long = {**TOY_SETTINGS, "epochs": epochs, "checkpoint_every": 2}
    body = {"dataset": "colours", "base": str(base), "adapter": "long", "settings": long}
    _dataset(admin, "colours", _rows())
    job: dict[str, Any] = admin.ok("POST", JOBS, body)
    return job


def test_a_cancelled_job_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    with GatewayServer(_config(tmp_path)) as gw:
        admin = Client(gw.base, MASTER, gw)
        job = _long_job(admin, base, epochs=1000)  # never run to its end
        wait_job(admin, job["id"], lambda j: j["steps"] >= 1)
        asked = admin.ok("POST", f"{JOBS}/{job['id']}/cancel")
        assert asked["status"] in ("running", "cancelled") and asked["cancel_requested"]
        first = wait_job(admin, job["id"], lambda j: j["status"] in FINAL)
        total = 1000 * math.ceil(job["examples"]["train"] / 4)
        assert first["status"] == "cancelled" and first["total_steps"] == total
        assert 1 <= first["steps"] < total and not first["cancel_requested"]
        assert (tmp_path / "tuning" / job["id"] / "checkpoint.pt").is_file()
        _error(admin.call("POST", f"{JOBS}/{job['id']}/cancel"), 409, "job_not_cancellable")

        resumed = admin.ok("POST", f"{JOBS}/{job['id']}/resume")
        assert resumed["status"] in ("queued", "running") and resumed["error"] is None
        _error(admin.call("POST", f"{JOBS}/{job['id']}/resume"), 409, "job_not_resumable")
        wait_job(admin, job["id"], lambda j: j["steps"] > first["steps"] or j["status"] in FINAL)
        admin.ok("POST", f"{JOBS}/{job['id']}/cancel")
        second = wait_job(admin, job["id"], lambda j: j["status"] in FINAL)
        # It went on from the checkpoint: the curve so far is kept, never started over (a
        # checkpoint is every 2 steps, so up to one step is repeated, with the same loss).
        assert second["status"] == "cancelled" and second["steps"] > first["steps"]
        kept = first["steps"] - first["steps"] % 2
        assert second["losses"][:kept] == first["losses"][:kept]


def test_a_restart_resumes_a_running_job_from_its_checkpoint(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    with GatewayServer(_config(tmp_path)) as gw:
        admin = Client(gw.base, MASTER, gw)
        job = _long_job(admin, base, epochs=100)
        before = wait_job(admin, job["id"], lambda j: j["steps"] >= 3)
    with GatewayServer(_config(tmp_path)) as gw:  # the same database and folder
        admin = Client(gw.base, MASTER, gw)
        done = wait_job(admin, job["id"], lambda j: j["status"] in FINAL)
        assert done["status"] == "succeeded", done
        assert done["steps"] == done["total_steps"] == len(done["losses"])
        assert done["metrics"]["resumed_from"] >= before["steps"] - 1
        assert done["metrics"]["cpu_seconds"] > 0  # both workers' CPU time
        assert done["losses"][:2] == before["losses"][:2]
        audit = admin.ok("GET", "/admin/v1/audit", params={"action": "tuning.job.finish"})["data"]
        assert sorted(e["detail"]["status"] for e in audit) == ["queued", "succeeded"]
        assert admin.ok("GET", f"{ADAPTERS}/long")["job_id"] == job["id"]


def test_a_job_that_cannot_load_its_base_fails_clearly_and_the_gateway_serves_on(
    world: tuple[Client, World], tmp_path: Path
) -> None:
    admin, _ = world
    base = tiny_base(tmp_path / "base")
    (base / "model.safetensors").write_bytes(b"not a safetensors file")  # passes the fingerprint
    _dataset(admin, "colours", _rows())
    body = {"dataset": "colours", "base": str(base), "adapter": "broken"}
    job = admin.ok("POST", JOBS, body)
    failed = wait_job(admin, job["id"], lambda j: j["status"] in FINAL)
    assert failed["status"] == "failed" and failed["steps"] == 0
    assert failed["error"] and "Traceback" not in failed["error"], failed["error"]
    # The log keeps what the worker said, the traceback on stderr and the error event.
    logged = admin.ok("GET", f"{JOBS}/{job['id']}/logs")["data"]
    assert any(e["stream"] == "stderr" and "Traceback" in e["line"] for e in logged), logged
    assert any(e["stream"] == "event" and '"event":"error"' in e["line"] for e in logged)
    _error(admin.call("GET", f"{ADAPTERS}/broken"), 404, "adapter_not_found")
    assert admin.ok("GET", JOBS)["data"][0]["status"] == "failed"  # the gateway still answers
    resumed = admin.ok("POST", f"{JOBS}/{job['id']}/resume")  # a failed job may be retried
    assert resumed["status"] in ("queued", "running") and resumed["error"] is None
