"""The improvement loop end to end, in one test with real parts and tiny models (issue 20's
"Done when"): traffic through the gateway (official `openai` SDK) to a model on a fake vLLM ->
feedback with corrections -> a dataset version built from the corrected traces -> a LoRA job
training the tiny Llama in a worker process -> the adapter registered with its lineage -> the
job's evaluation of base vs adapter -> an experiment routing part of the traffic to the adapter,
which the gateway loads on the fake vLLM on first use -> the adapter promoted -> every request
for the model now answered by the adapter.

The fake vLLM does not run the model: it answers as the base or as the named adapter, which is
what routing is judged by; the adapter's quality is judged by the job's own evaluation."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fixtures.needs import import_or_need

import_or_need("torch", "torch's CPU build (scripts/ensure-ml-extras.sh)")
import_or_need("peft", "the tune extra (peft)")

from tests.access.helpers import MASTER, Client  # noqa: E402
from tests.fixtures.gateway import GatewayServer, make_config  # noqa: E402
from tests.fixtures.vllm import FakeVLLM  # noqa: E402
from tests.tuning.tiny import COLOURS, TOY_SETTINGS, tiny_base  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated"),
]
EXPERIMENT = "colours-a-vs-base"


def _config(vllm: FakeVLLM, base: Path, tmp: Path) -> Any:
    dep = {
        "provider": "openai",
        "base_url": vllm.url,
        "model": vllm.base_model,  # the name the server gives its base
        "base": str(base),  # the folder it was loaded from: adapters must match it
        "adapter_loading": "vllm",
    }
    return make_config(
        {
            "models": [
                {"name": "support-bot", "deployments": [dep]},
                {"name": "support-bot-adapter", "deployments": [{**dep, "adapter": "colours-a"}]},
            ],
            "router": {"retries": 0},
            "traces": {"flush_interval": 0.05, "store_bodies": "full"},
            "feedback": {"metrics": {"thumbs": {"type": "boolean"}}, "flush_interval": 0.05},
            "tuning": {"folder": str(tmp / "tuning"), "poll": 0.1, "threads": 1},
            "settings": {
                "database_url": f"sqlite+aiosqlite:///{tmp / 'gw.db'}",
                "master_key": MASTER,
            },
        }
    )


def _until(what: Callable[[], Any], within: float, label: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, f"{label}: not within {within:g}s"
        time.sleep(0.1)


def _ask(client: openai.OpenAI, question: str, user: str | None = None) -> tuple[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model="support-bot",
        messages=[{"role": "user", "content": question}],
        **({"user": user} if user else {}),
    )
    text = str(raw.parse().choices[0].message.content)
    return text, raw.headers


def _traffic_with_corrections(admin: Client, client: openai.OpenAI) -> int:
    """Questions answered by the base, each corrected by feedback: (trace, correction)."""
    corrected = 0
    for n in range(4):
        for thing, colour in COLOURS.items():
            question = f"what colour is the {thing} " + " ".join("?" * (n + 1))
            text, headers = _ask(client, question, user=f"u{n}")
            assert text.startswith("[base]")
            body = {
                "trace_id": headers["x-opsgate-trace-id"],
                "metric": "thumbs",
                "value": False,
                "correction": f"the {thing} is {colour}",
            }
            assert admin.call("POST", "/v1/feedback", body).status_code in (200, 201, 202)
            trace = f"/admin/v1/traces/{headers['x-opsgate-trace-id']}"
            _until(lambda t=trace: admin.call("GET", t).status_code == 200, 10, "trace stored")
            corrected += 1
    _until(
        lambda: (
            len(admin.ok("GET", "/admin/v1/feedback", params={"limit": "1000"})["data"])
            >= corrected
        ),
        10,
        "scores written",
    )
    return corrected


def test_traffic_to_feedback_to_adapter_to_experiment_to_promotion(tmp_path: Path) -> None:
    base = tiny_base(tmp_path / "base")
    with FakeVLLM("tiny-llama") as vllm, GatewayServer(_config(vllm, base, tmp_path)) as gw:
        admin = Client(gw.base, MASTER, gw)
        client = openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0)
        with pytest.raises(openai.NotFoundError, match="not registered"):
            client.chat.completions.create(
                model="support-bot-adapter", messages=[{"role": "user", "content": "hi"}]
            )

        # traffic -> feedback with corrections -> a dataset version of the corrected traces
        corrected = _traffic_with_corrections(admin, client)
        made = admin.ok(
            "POST",
            "/admin/v1/datasets",
            {"name": "colours", "from_traces": [{"model": "support-bot", "corrected": True}]},
        )
        assert made["version"] == 1 and made["added"] == corrected == 20

        # -> a LoRA job on the tiny Llama -> the adapter registered with its lineage
        job = admin.ok(
            "POST",
            "/admin/v1/tuning/jobs",
            {"dataset": "colours", "dataset_version": 1, "base": str(base),
             "adapter": "colours-a", "settings": TOY_SETTINGS},
        )  # fmt: skip
        done = _until(
            lambda: (
                (j := admin.ok("GET", f"/admin/v1/tuning/jobs/{job['id']}"))["status"]
                in ("succeeded", "failed", "cancelled")
                and j
            ),
            240,
            "the job",
        )
        assert done["status"] == "succeeded", done
        adapter = admin.ok("GET", "/admin/v1/adapters/colours-a")
        assert (adapter["job_id"], adapter["dataset_version"]) == (job["id"], 1)
        assert adapter["dataset_id"] == made["dataset"]["id"] and not adapter["tainted"]

        # -> evaluation base vs adapter, as the job recorded it
        metrics = done["metrics"]
        assert metrics["validation_after"] < metrics["validation_before"]
        evaluation = metrics["evaluation"]  # the evals scorers on the held-back split
        overlap = evaluation["scorers"]["overlap"]
        assert overlap["scored"] > 0 and overlap["adapter"] > overlap["base"], evaluation
        assert adapter["metrics"]["evaluation"] == evaluation

        # -> an experiment: adapter against base, sticky per end user, on the fake vLLM
        admin.ok(
            "POST",
            "/admin/v1/experiments",
            {"name": EXPERIMENT, "traffic": {"model": "support-bot"}, "unit": "end_user",
             "variants": [{"name": "base"}, {"name": "adapter", "model": "support-bot-adapter"}],
             "metric": "thumbs", "min_units": 5},
        )  # fmt: skip
        answered: dict[str, set[tuple[str, str]]] = {}
        for _ in range(2):
            for i in range(10):
                text, headers = _ask(client, "what colour is the sky ?", user=f"e{i}")
                answered.setdefault(f"e{i}", set()).add(
                    (headers["x-opsgate-variant"], text.split()[0])
                )
        assert all(len(seen) == 1 for seen in answered.values()), answered
        pairs = {next(iter(seen)) for seen in answered.values()}
        assert pairs == {("base", "[base]"), ("adapter", "[colours-a]")}
        loads = vllm.calls_to("/v1/load_lora_adapter")
        assert [c.body for c in loads] == [{"lora_name": "colours-a", "lora_path": adapter["path"]}]
        report = admin.ok("GET", f"/admin/v1/experiments/{EXPERIMENT}")
        assert {v["name"] for v in report["stats"]["variants"]} == {"base", "adapter"}

        # -> the adapter promoted: every request for the model goes to it
        admin.ok("POST", f"/admin/v1/experiments/{EXPERIMENT}/stop")
        admin.ok("POST", "/admin/v1/adapters/colours-a/promote", {"model": "support-bot"})
        for i in range(4):
            text, headers = _ask(client, "what colour is the grass ?", user=f"e{i}")
            assert text.startswith("[colours-a]") and "x-opsgate-variant" not in headers
        assert vllm.calls[-1].body["model"] == "colours-a"
        assert len(vllm.calls_to("/v1/load_lora_adapter")) == 1  # loaded once, served since
        client.close()
