"""Provider-hosted fine-tuning (`method: openai`) through the admin API of a real gateway,
against the fake OpenAI upstream's files and fine-tuning jobs endpoints
(tests/fixtures/finetune.py): the split uploaded, the job created with its settings, its
events become the loss curve, the tuned model registered as a hosted adapter and served by a
deployment after a reload; provider refusals and failures as clear job errors; cancel and
resume; a restarted gateway follows the same provider job. The fake's wire format is checked
with the official `openai` SDK and its types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import FileObject
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from opsgate.config import load_config
from tests.access.helpers import MASTER, Client, World, seed
from tests.fixtures.finetune import Plan
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, Status
from tests.tuning.jobs import ADAPTERS, FINAL, JOBS, wait_job

pytestmark = pytest.mark.integration
KEY = "sk-provider"
BASE = "gpt-4o-mini-2024-07-18"


def _config(tmp: Path, fake: FakeUpstream, **extra_models: str) -> dict[str, Any]:
    def openai_model(name: str, model: str, key: str = KEY) -> dict[str, Any]:
        dep = {"provider": "openai", "base_url": fake.url, "model": model, "api_key": key}
        return {"name": name, "deployments": [dep]}

    models = [openai_model("mini", BASE), openai_model("badkey", BASE, key="sk-wrong")]
    models.append({"name": "sim", "deployments": [{"provider": "simulator", "model": "sim"}]})
    models += [openai_model(name, model) for name, model in extra_models.items()]
    return {
        "models": models,
        "router": {"retries": 0},
        "settings": {"database_url": f"sqlite+aiosqlite:///{tmp / 'gw.db'}", "master_key": MASTER},
        "traces": {"flush_interval": 0.05, "store_bodies": "full"},
        "tuning": {"folder": str(tmp / "tuning"), "poll": 0.05, "hosted_poll": 0.05},
    }


class Setup:
    def __init__(self, tmp: Path, fake: FakeUpstream) -> None:
        self.tmp, self.fake = tmp, fake
        self.path = tmp / "opsgate.yaml"
        self.write()

    def write(self, **extra_models: str) -> None:
        self.path.write_text(json.dumps(_config(self.tmp, self.fake, **extra_models)))

    def gateway(self) -> GatewayServer:
        return GatewayServer(load_config(self.path), config_path=self.path)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with FakeUpstream("provider", api_key=KEY) as fake:
        yield Setup(tmp_path, fake)


def _rows() -> list[dict[str, Any]]:
    things = {"sky": "blue", "grass": "green", "sun": "yellow", "snow": "white", "coal": "black"}
    rows = []
    for n in range(3):
        for thing, colour in things.items():
            question = f"what colour is the {thing} " + "?" * (n + 1)
            messages = [{"role": "user", "content": question}]
            rows.append({"messages": messages, "output": f"the {thing} is {colour}"})
    return rows


def _hosted(adapter: str, deployment: str = "mini", **hosted: Any) -> dict[str, Any]:
    return {
        "dataset": "colours",
        "method": "openai",
        "base": BASE,
        "adapter": adapter,
        "hosted": {"deployment": deployment, **hosted},
    }


def _start(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    made = client.call("POST", JOBS, body)
    assert made.status_code == 201, made.text
    job: dict[str, Any] = made.json()
    return job


def _error(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err: dict[str, Any] = resp.json()["error"]
    if code is not None:
        assert err["code"] == code, err
    return err


def _posts(fake: FakeUpstream, path: str) -> list[Any]:
    return [r.body for r in fake.requests if r.method == "POST" and r.path == path]


def _world(gw: GatewayServer) -> tuple[Client, World]:
    admin = Client(gw.base, MASTER, gw)
    return admin, seed(admin)


def test_the_fake_speaks_the_sdk_wire_format() -> None:
    with FakeUpstream("provider", api_key=KEY) as fake:
        fake.tuning.plan(Plan(steps=2), Plan(hold=True))
        lines = [json.dumps({"messages": r["messages"]}) for r in _rows()]
        with openai.OpenAI(base_url=fake.url, api_key=KEY, max_retries=0) as client:
            raw = client.files.with_raw_response.create(
                file=("train.jsonl", "\n".join(lines).encode()), purpose="fine-tune"
            )
            file = FileObject.model_validate(raw.http_response.json())
            assert file.purpose == "fine-tune" and file.bytes > 0
            job = client.fine_tuning.jobs.create(
                model=BASE,
                training_file=file.id,
                suffix="colours",
                method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
            )
            assert job.status == "validating_files" and job.hyperparameters.n_epochs == 2
            seen = []
            for _ in range(6):
                got = client.fine_tuning.jobs.with_raw_response.retrieve(job.id)
                seen.append(FineTuningJob.model_validate(got.http_response.json()))
            assert [j.status for j in seen] == ["queued", "running"] + ["running"] * 2 + [
                "succeeded"
            ] * 2
            assert seen[-1].fine_tuned_model and "colours" in seen[-1].fine_tuned_model
            events = client.fine_tuning.jobs.with_raw_response.list_events(job.id, limit=100)
            page = events.http_response.json()
            parsed = [FineTuningJobEvent.model_validate(e) for e in page["data"]]
            metrics = [e.data for e in reversed(parsed) if e.type == "metrics"]
            assert [m["step"] for m in metrics if isinstance(m, dict)] == [1, 2]
            older = client.fine_tuning.jobs.list_events(job.id, after=parsed[0].id, limit=2)
            assert [e.id for e in older.data] == [e.id for e in parsed[1:3]]

            held = client.fine_tuning.jobs.create(model=BASE, training_file=file.id)
            cancelled = client.fine_tuning.jobs.cancel(held.id)
            assert cancelled.status == "cancelled"
            with pytest.raises(openai.BadRequestError):
                client.fine_tuning.jobs.create(model=BASE, training_file="file-nope")
        with (
            openai.OpenAI(base_url=fake.url, api_key="sk-wrong", max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.fine_tuning.jobs.retrieve(job.id)


def test_a_hosted_job_registers_the_tuned_model_and_a_deployment_serves_it(
    setup: Setup,
) -> None:
    fake = setup.fake
    fake.tuning.plan(Plan(steps=4))
    with setup.gateway() as gw:
        admin, w = _world(gw)
        lead = admin.as_(w.keys["team_admin:a"])
        lead.ok("POST", "/admin/v1/datasets", {"name": "colours", "rows": _rows()})
        fake.script(Status(429, message="slow down"))  # the first upload: tried again
        body = _hosted("colours-ft", n_epochs=2, suffix="colours")
        job = _start(lead, body)
        assert job["method"] == "openai" and job["provider"] == {"deployment": "mini"}

        done = wait_job(lead, job["id"], lambda j: j["status"] in FINAL, timeout=30)
        assert done["status"] == "succeeded", done
        remote = fake.tuning.jobs[done["provider"]["job"]].obj
        assert done["provider"]["status"] == "succeeded"
        assert done["steps"] == done["total_steps"] == len(done["losses"]) == 4
        assert done["losses"] == sorted(done["losses"], reverse=True)
        assert "validation_loss" in done["metrics"]
        assert done["metrics"]["trained_tokens"] == remote["trained_tokens"]
        messages = [e["message"] for e in done["provider"]["events"]]
        assert "Fine-tuning job started" in messages and len(messages) >= 3

        # What went over the wire: the train and validation split, then a supervised job.
        uploads = _posts(fake, "/v1/files")
        assert len(uploads) == 3 and all(u["purpose"] == "fine-tune" for u in uploads)
        assert fake.tuning.files == {}  # deleted from the provider once its job was over
        files = {f["filename"]: f["content"] for f in fake.tuning.deleted.values()}
        train = files[f"{job['id']}-train.jsonl"].splitlines()
        held = files[f"{job['id']}-validation.jsonl"].splitlines()
        assert (len(train), len(held)) == (job["examples"]["train"], job["examples"]["validation"])
        assert all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in train)
        (created,) = _posts(fake, "/v1/fine_tuning/jobs")
        assert created["model"] == BASE and created["suffix"] == "colours"
        assert created["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2}
        assert created["training_file"] == remote["training_file"]
        assert created["validation_file"] == remote["validation_file"] is not None

        adapter = lead.ok("GET", f"{ADAPTERS}/colours-ft")
        assert adapter["kind"] == "hosted" and adapter["model"] == remote["fine_tuned_model"]
        assert adapter["path"] == "" and adapter["job_id"] == job["id"]
        audit = admin.ok("GET", "/admin/v1/audit", params={"action": "tuning.adapter.register"})
        assert [e["detail"]["model"] for e in audit["data"]] == [adapter["model"]]

        # A deployment serves the tuned model by its name once the config names it.
        setup.write(colours=adapter["model"])
        admin.ok("POST", "/admin/v1/config/reload")
        with openai.OpenAI(base_url=gw.url, api_key=w.keys["service:a"], max_retries=0) as sdk:
            answer = sdk.chat.completions.create(
                model="colours", messages=[{"role": "user", "content": "what colour is snow?"}]
            )
        assert answer.choices[0].message.content == "hello from provider"
        assert fake.requests[-1].body["model"] == adapter["model"]

        assert lead.ok("DELETE", f"{ADAPTERS}/colours-ft")["name"] == "colours-ft"
        _error(lead.call("GET", f"{ADAPTERS}/colours-ft"), 404, "adapter_not_found")


def test_provider_refusals_and_failures_are_clear_job_errors(setup: Setup) -> None:
    fake = setup.fake
    with setup.gateway() as gw:
        admin, w = _world(gw)
        lead = admin.as_(w.keys["team_admin:a"])
        lead.ok("POST", "/admin/v1/datasets", {"name": "colours", "rows": _rows()})

        # Refused at once, nothing queued.
        _error(lead.call("POST", JOBS, _hosted("x", deployment="nope")), 400, "invalid_deployment")
        err = _error(lead.call("POST", JOBS, _hosted("x", deployment="sim")), 400)
        assert err["code"] == "invalid_deployment" and "no openai deployment" in err["message"]
        err = _error(lead.call("POST", JOBS, {**_hosted("x"), "settings": {"rank": 4}}), 422)
        assert "`settings` are LoRA's" in err["message"]
        err = _error(lead.call("POST", JOBS, {**_hosted("x"), "hosted": None}), 422)
        assert "method 'openai' needs `hosted`" in err["message"]
        _error(lead.call("POST", JOBS, _hosted("x", suffix="has spaces")), 422, "invalid_body")
        assert lead.ok("GET", JOBS)["data"] == []

        def failed(body: dict[str, Any]) -> str:
            done = wait_job(
                lead, _start(lead, body)["id"], lambda j: j["status"] in FINAL, timeout=30
            )
            assert done["status"] == "failed", done
            assert done["finished_at"] is not None and done["heartbeat_at"] is None
            return str(done["error"])

        # The provider refuses the key of the deployment.
        error = failed(_hosted("a1", deployment="badkey"))
        assert "uploading the training file" in error and "401" in error
        assert "api_key was refused" in error
        # The provider refuses the file.
        fake.script(Status(400, message="Invalid file format for Fine-Tuning API"))
        error = failed(_hosted("a2"))
        assert "uploading the training file" in error and "Invalid file format" in error
        # The provider's job fails while training.
        fake.tuning.plan(Plan(steps=2, outcome="failed", error=("server_error", "out of GPUs")))
        error = failed(_hosted("a3"))
        assert "failed: server_error: out of GPUs" in error
        # A provider that answers 503 five times in a row.
        fake.script(*[Status(503, message="overloaded")] * 5)
        error = failed(_hosted("a4"))
        assert "uploading the training file" in error and "overloaded (5 attempts)" in error
        assert [a["name"] for a in lead.ok("GET", ADAPTERS)["data"]] == []
        assert admin.chat("mini").status_code == 200  # the gateway serves on


def test_cancel_resume_and_a_restart_follow_the_provider_job(setup: Setup) -> None:
    fake = setup.fake
    # The resumed job reports 250 steps in two looks: its events span several pages.
    long = Plan(steps=250, per_look=125)
    ends = Plan(steps=1, hold=True, finish_on_cancel=True)
    fake.tuning.plan(Plan(steps=2, hold=True), long, ends, Plan(steps=3, hold=True))
    with setup.gateway() as gw:
        admin, w = _world(gw)
        lead = admin.as_(w.keys["team_admin:a"])
        lead.ok("POST", "/admin/v1/datasets", {"name": "colours", "rows": _rows()})
        job = _start(lead, _hosted("held"))
        wait_job(lead, job["id"], lambda j: j["steps"] == 2, timeout=30)
        first = lead.ok("GET", f"{JOBS}/{job['id']}")["provider"]["job"]
        lead.ok("POST", f"{JOBS}/{job['id']}/cancel")
        done = wait_job(lead, job["id"], lambda j: j["status"] in FINAL, timeout=30)
        assert done["status"] == "cancelled" and done["provider"]["status"] == "cancelled"
        assert fake.tuning.jobs[first].obj["status"] == "cancelled"
        assert [r.path for r in fake.requests if r.path.endswith("/cancel")] == [
            f"/v1/fine_tuning/jobs/{first}/cancel"
        ]

        # Resuming a hosted job starts a new provider job (a cancelled one cannot go on).
        lead.ok("POST", f"{JOBS}/{job['id']}/resume")
        done = wait_job(lead, job["id"], lambda j: j["status"] in FINAL, timeout=30)
        assert done["status"] == "succeeded" and done["provider"]["job"] != first
        assert done["steps"] == done["total_steps"] == len(done["losses"]) == 250
        assert done["losses"] == sorted(done["losses"], reverse=True)
        events = fake.tuning.jobs[done["provider"]["job"]].events
        assert done["losses"] == [e["data"]["train_loss"] for e in events if e["type"] == "metrics"]

        # A job that ends as the cancel reaches the provider (refused: too late) succeeded.
        late = _start(lead, _hosted("late"))
        wait_job(lead, late["id"], lambda j: j["steps"] == 1, timeout=30)
        lead.ok("POST", f"{JOBS}/{late['id']}/cancel")
        done = wait_job(lead, late["id"], lambda j: j["status"] in FINAL, timeout=30)
        assert done["status"] == "succeeded" and done["error"] is None, done
        assert lead.ok("GET", f"{ADAPTERS}/late")["kind"] == "hosted"

        # A gateway that stops leaves its running hosted job queued with the provider's job id.
        other = _start(lead, _hosted("restarted"))
        running = wait_job(lead, other["id"], lambda j: j["steps"] == 3, timeout=30)
    remote = running["provider"]["job"]
    creates = len(_posts(fake, "/v1/fine_tuning/jobs"))
    fake.tuning.jobs[remote].plan = Plan(steps=3)  # let it finish
    with setup.gateway() as gw:
        lead = Client(gw.base, w.keys["team_admin:a"], gw)
        done = wait_job(lead, other["id"], lambda j: j["status"] in FINAL, timeout=30)
        assert done["status"] == "succeeded" and done["provider"]["job"] == remote
        assert len(_posts(fake, "/v1/fine_tuning/jobs")) == creates  # followed, not restarted
        assert done["losses"] == running["losses"]
        assert (
            lead.ok("GET", f"{ADAPTERS}/restarted")["model"]
            == (fake.tuning.jobs[remote].obj["fine_tuned_model"])
        )
