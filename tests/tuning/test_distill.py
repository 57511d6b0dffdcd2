"""Distillation through the admin API of a real gateway: the teacher is the fake OpenAI upstream
(answering the colour task, with refusals the filter drops and one failed call), the student the
tiny Llama trained for real in the worker; the run makes the dataset, the job, the adapter and
the comparison table with measured figures. Bad input is refused before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.needs import import_or_need

import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
import_or_need("peft", "the tune extra (peft)")

from tests.access.helpers import MASTER, Client, World, seed  # noqa: E402
from tests.fixtures.gateway import GatewayServer, make_config  # noqa: E402
from tests.fixtures.upstream import FakeUpstream, Reply, Status  # noqa: E402
from tests.tuning.tiny import ALL_LINEAR, COLOURS, tiny_base  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated"),
]
DISTILL = "/admin/v1/tuning/distill"
TEACHER = "teacher-big"
REFUSAL = "I'm sorry, I cannot help with that."
REFUSED = {2, 7, 13}
"""Inputs (in dataset order) the teacher refuses."""
FAILED = 11
"""The input whose teacher call fails (the upstream answers 400)."""
PRICE = {"input": "2", "output": "8"}  # USD per 1M tokens


def _config(tmp: Path, fake: FakeUpstream) -> Any:
    deployment = {"provider": "openai", "base_url": fake.url, "model": "big",
                  "api_key": "sk-up", "price": PRICE}  # fmt: skip
    return make_config(
        {
            "settings": {
                "database_url": f"sqlite+aiosqlite:///{tmp / 'gw.db'}",
                "master_key": MASTER,
            },
            "models": [{"name": TEACHER, "deployments": [deployment]}],
            "router": {"retries": 0},
            "traces": {"flush_interval": 0.05, "store_bodies": "full"},
            "tuning": {"folder": str(tmp / "tuning"), "poll": 0.1, "threads": 1},
        }
    )


@pytest.fixture
def world(
    tmp_path: Path, upstreams: dict[str, FakeUpstream]
) -> Iterator[tuple[Client, World, FakeUpstream]]:
    fake = upstreams["alpha"]
    with GatewayServer(_config(tmp_path, fake)) as gw:
        admin = Client(gw.base, MASTER, gw)
        yield admin, seed(admin), fake


def _questions() -> list[tuple[str, str]]:
    """(question, right answer), 8 distinct questions per thing (1 to 8 question marks)."""
    return [
        (f"what colour is the {thing} " + " ".join("?" * (n + 1)), f"the {thing} is {colour}")
        for n in range(8)
        for thing, colour in COLOURS.items()
    ]


def _dataset(client: Client, name: str, pairs: list[tuple[str, str]]) -> None:
    rows = [{"messages": [{"role": "user", "content": q}], "output": a, "end_user": f"u{i % 2}"}
            for i, (q, a) in enumerate(pairs)]  # fmt: skip
    client.ok("POST", "/admin/v1/datasets", {"name": name, "rows": rows})


def _body(base: Path, **extra: Any) -> dict[str, Any]:
    settings = {"rank": 8, "alpha": 16, "epochs": 30, "batch_size": 4, "learning_rate": 1e-2,
                "target_modules": list(ALL_LINEAR)}  # fmt: skip
    body = {"teacher": TEACHER, "dataset": "colours", "student": str(base),
            "adapter": "colours-student", "settings": settings, "concurrency": 1,
            "max_new_tokens": 8, "cpu_hour_usd": 0.05, "validation": 0.1}  # fmt: skip
    return {**body, **extra}


def _env(admin: Client, w: World) -> dict[str, str]:
    return {"OPSGATE_URL": admin.base, "OPSGATE_ADMIN_KEY": w.keys["team_admin:a"], "PATH": "",
            "COLUMNS": "160", "HOME": os.environ.get("HOME", "/tmp")}  # fmt: skip


def opsgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    run = [sys.executable, "-m", "opsgate", *args]
    return subprocess.run(run, capture_output=True, text=True, timeout=120, env=env, check=False)


def _wait(client: Client, record_id: str, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        record: dict[str, Any] = client.ok("GET", f"{DISTILL}/{record_id}")
        if record["status"] != "running":
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.1)


def test_a_distillation_trains_a_student_and_compares_it_with_the_teacher(
    world: tuple[Client, World, FakeUpstream], tmp_path: Path
) -> None:
    admin, w, fake = world
    lead = admin.as_(w.keys["team_admin:a"])
    pairs = _questions()
    _dataset(lead, "colours", pairs)
    # One call at a time, in dataset order: each input gets its scripted answer.
    fake.script(*(Status(400) if i == FAILED else Reply(REFUSAL if i in REFUSED else answer)
                  for i, (_, answer) in enumerate(pairs)))  # fmt: skip
    started = lead.call("POST", DISTILL, _body(tiny_base(tmp_path / "base")))
    assert started.status_code == 201, started.text
    record = _wait(lead, started.json()["id"])
    print(json.dumps(record, indent=1))  # shown when the test fails
    assert record["status"] == "succeeded", record
    assert record["stage"] == "done" and record["team_id"] == "team-a"

    # Every input asked once; every training input kept, dropped by the filter or failed.
    inputs, calls = record["inputs"], record["teacher_calls"]
    assert inputs["total"] == len(pairs) == calls["calls"] == len(fake.requests)
    assert inputs["train"] + inputs["held_out"] == inputs["total"]
    assert calls["train_inputs"] == inputs["train"]
    assert calls["kept"] + calls["dropped"] + calls["train_failed"] == inputs["train"]
    assert calls["held_out_answers"] + calls["held_out_failed"] == inputs["held_out"]
    assert calls["failed"] == 1 and calls["errors"][0].startswith(f"input {FAILED}: 400")
    assert [r.body["user"] for r in fake.requests] == [f"u{i % 2}" for i in range(len(pairs))]
    assert set(calls["dropped_by"]) <= {"refusal"}

    # The kept pairs are the distilled dataset, with its provenance; the job trained on it.
    ds = record["dataset"]
    assert ds["rows"] == calls["kept"] and ds["name"] == "colours-student-distilled"
    shown = lead.ok("GET", f"/admin/v1/datasets/{ds['id']}")
    assert shown["rows"] == calls["kept"] and shown["version"] == ds["version"], shown
    assert f"distilled from {TEACHER} on colours@1" in shown["description"], shown
    assert f"kept {calls['kept']}, dropped {calls['dropped']}" in shown["description"]
    job = lead.ok("GET", f"/admin/v1/tuning/jobs/{record['job_id']}")
    assert job["status"] == "succeeded" and job["dataset_id"] == ds["id"]
    assert job["examples"]["train"] + job["examples"]["validation"] == calls["kept"]
    adapter = lead.ok("GET", "/admin/v1/adapters/colours-student")
    assert adapter["job_id"] == job["id"]

    # The comparison: one row per model, figures measured on the same held-out answers.
    table = record["comparison"]
    rows = {r["role"]: r for r in table["rows"]}
    assert list(rows) == ["teacher", "student", "base"] and table["reference"] == "dataset"
    held = calls["held_out_answers"]
    assert table["held_out"] == held and all(r["requests"] == held for r in rows.values())
    for row in rows.values():
        assert 0 < row["latency_ms"]["median"] <= row["latency_ms"]["p95"]
        assert row["cost_per_1k_usd"] > 0
    for role in ("student", "base"):
        per_1k = rows[role]["cpu_seconds_per_request"] * 0.05 / 3600 * 1000
        assert rows[role]["cost_per_1k_usd"] == pytest.approx(per_1k, rel=1e-3, abs=1e-6)
    # Each refusal was dropped from training or scored wrong on the held-out side.
    wrong = round((1 - rows["teacher"]["quality"]["exact"]) * held)
    assert calls["dropped"] + wrong == len(REFUSED - {FAILED})
    assert rows["student"]["quality"]["exact"] > rows["base"]["quality"]["exact"]
    # The distilled rows keep their end users: an erasure reaches the student's job.
    export = admin.ok("GET", "/admin/v1/end-users/u1/export")["data"]["tuning"]
    assert {t["id"] for t in export} == {record["job_id"]}, export
    # The held-out conversations written for the student's worker are gone.
    work = tmp_path / "tuning" / "distill"
    assert (work / f"{record['id']}.json").is_file() and not (work / record["id"]).exists()
    # Stored with the job's and the adapter's metrics.
    job = lead.ok("GET", f"/admin/v1/tuning/jobs/{record['job_id']}")
    adapter = lead.ok("GET", "/admin/v1/adapters/colours-student")
    for metrics in (job["metrics"], adapter["metrics"]):
        assert metrics["distillation"]["rows"] == table["rows"]

    # Scope: team B does not see it; the CLI prints the table.
    other = admin.as_(w.keys["team_admin:b"]).call("GET", f"{DISTILL}/{record['id']}")
    assert other.status_code == 404
    shown_cli = opsgate("tuning", "distillation", record["id"], env=_env(admin, w))
    assert shown_cli.returncode == 0, shown_cli.stderr
    for word in (TEACHER, "colours-student", "teacher", "student", "base", "p95 ms"):
        assert word in shown_cli.stdout, shown_cli.stdout


def test_bad_distillations_are_refused_before_anything_starts(
    world: tuple[Client, World, FakeUpstream], tmp_path: Path
) -> None:
    admin, w, fake = world
    lead = admin.as_(w.keys["team_admin:a"])
    base = tiny_base(tmp_path / "base")
    _dataset(lead, "colours", _questions())
    _dataset(lead, "tiny", _questions()[:3])

    def refused(body: dict[str, Any], status: int, code: str, who: Client = lead) -> None:
        resp = who.call("POST", DISTILL, body)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["code"] == code, resp.text

    refused(_body(base, teacher="no-such-model"), 404, "model_not_found")
    refused(_body(base, dataset="nope"), 404, "dataset_not_found")
    refused(_body(base, dataset_version=7), 404, "version_not_found")
    refused(_body(base, dataset="tiny"), 400, "dataset_too_small")
    refused(_body(tmp_path / "missing"), 400, "invalid_base")
    refused(_body(base, filters=["no-such-scorer"]), 400, "invalid_scorer")
    refused(_body(base, into="colours"), 409, "dataset_exists")
    refused(_body(base), 403, "permission_denied", admin.as_(w.keys["viewer:a"]))
    narrow = admin.ok("POST", "/admin/v1/keys", {"role": "team_admin", "team_id": "team-a",
                                                 "models": ["small-*"]})["key"]  # fmt: skip
    refused(_body(base), 403, "model_not_allowed", admin.as_(narrow))
    assert fake.requests == [] and lead.ok("GET", DISTILL)["data"] == []


def test_seed_topics_become_inputs_and_a_teacher_that_only_refuses_fails_the_run(
    world: tuple[Client, World, FakeUpstream], tmp_path: Path
) -> None:
    """The teacher writes the inputs from seed topics (numbering and repeats cut); when the
    filter drops every answer the run fails at the teacher stage, saying why, and makes
    neither a dataset nor a job."""
    admin, w, fake = world
    lead = admin.as_(w.keys["team_admin:a"])
    written = {
        "sky": "1. what colour is the sky ?\n2) what colour is the sky ? ?\n\n- what colour is "
        "the sky ? ? ?\nwhat colour is the sky ?",
        "grass": "what colour is the grass ?\n* what colour is the grass ? ?\nwhat colour is the "
        "grass ? ? ?\nwhat colour is the grass ? ? ? ?\nwhat colour is the grass ? ? ? ? ?",
    }
    fake.script(Reply(written["sky"]), Reply(written["grass"]))
    fake.default = Reply(REFUSAL)
    body = _body(tiny_base(tmp_path / "base"), topics=["sky", "grass"], per_topic=4)
    del body["dataset"]
    both = lead.call("POST", DISTILL, {**body, "dataset": "colours"})
    assert both.status_code == 422 and "one of them" in both.json()["error"]["message"]
    # Started and followed by the CLI, which prints the record and exits 1 for a failed run.
    cli = opsgate(
        "tuning", "distill", "--teacher", TEACHER, "--topic", "sky", "--topic", "grass",
        "--per-topic", "4", "--student", body["student"], "--adapter", "colours-student",
        "--concurrency", "1", "--json", env=_env(admin, w),
    )  # fmt: skip
    assert cli.returncode == 1, cli.stderr
    record = json.loads(cli.stdout)
    assert f"{record['id']}: inputs" in cli.stderr  # the first stage, as the run started
    asked = [r.body["messages"][0]["content"] for r in fake.requests[:2]]
    assert all("Write 4 different questions" in a for a in asked)
    assert asked[0].endswith("about: sky\nOne per line, no numbering, nothing else.")
    inputs, calls = record["inputs"], record["teacher_calls"]
    assert inputs["total"] == 3 + 4 and inputs["errors"] == []  # 4 per topic, repeats once
    assert inputs["train"] + inputs["held_out"] == inputs["total"] == calls["calls"]
    asked_teacher = [r.body["messages"][0]["content"] for r in fake.requests[2:]]
    assert sorted(asked_teacher) == sorted(
        ["what colour is the sky " + " ".join("?" * n) for n in (1, 2, 3)]
        + ["what colour is the grass " + " ".join("?" * n) for n in (1, 2, 3, 4)]
    )
    assert calls["kept"] == 0 and calls["dropped_by"] == {"refusal": inputs["train"]}
    assert (record["status"], record["stage"]) == ("failed", "teacher")
    assert record["error"].startswith("0 teacher answers were kept"), record["error"]
    assert record["dataset"] is None and record["job_id"] is None
    assert lead.ok("GET", "/admin/v1/tuning/jobs")["data"] == []
