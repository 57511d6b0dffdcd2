"""Rolling an adapter out against a real fake vLLM through the official `openai` SDK:

- direct promotion (`POST /admin/v1/adapters/{name}/promote`): the model's requests go to the
  adapter from the next request on, for everyone or one team; audited; refused for a tainted
  adapter, one on another base, a model without an adapter-serving deployment (409), an
  unknown adapter or model (404), another team (403); a restarted gateway keeps it; `demote`
  takes it back (audited, kept taken back across a restart); a promoted adapter cannot be
  deleted (409) until it is demoted;
- the experiment recipe: adapter against base as two model variants, sticky per end user,
  feedback joined to each variant in the experiment's statistics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.access.helpers import MASTER, Client, World, seed
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.vllm import FakeVLLM, fake_base, register_adapter

pytestmark = pytest.mark.integration
A = "/admin/v1/adapters"
MSG: list[Any] = [{"role": "user", "content": "hello"}]


def _config(vllm: FakeVLLM, base: Path, url: str) -> Any:
    dep = {
        "provider": "openai",
        "base_url": vllm.url,
        "model": vllm.base_model,
        "base": str(base),
        "adapter_loading": "vllm",
    }
    return make_config(
        {
            "models": [
                {"name": "support-bot", "deployments": [dep]},
                {"name": "support-bot-adapter", "deployments": [{**dep, "adapter": "support-a"}]},
                {"name": "sim", "deployments": [{"provider": "simulator", "model": "sim"}]},
            ],
            "router": {"retries": 0},
            "traces": {"flush_interval": 0.05},
            "feedback": {"metrics": {"thumbs": {"type": "boolean"}}, "flush_interval": 0.05},
            "settings": {"database_url": url, "master_key": MASTER},
        }
    )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[FakeVLLM, GatewayServer, World, Any]]:
    base, other = fake_base(tmp_path / "base"), fake_base(tmp_path / "other", hidden=64)
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    with FakeVLLM("llama-base") as vllm:
        config = _config(vllm, base, url)
        with GatewayServer(config) as gw:
            world = seed(Client(gw.base, MASTER, gw))
            folder = tmp_path / "adapters"
            register_adapter(url, folder, "support-a", base)
            register_adapter(url, folder, "team-a-bot", base, team_id="team-a")
            register_adapter(url, folder, "other-a", other)
            register_adapter(url, folder, "tainted-a", base, tainted=True)
            yield vllm, gw, world, config


def _answer(gw: GatewayServer, key: str, model: str = "support-bot") -> str:
    with openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0) as client:
        answer = client.chat.completions.create(model=model, messages=MSG)
    return str(answer.choices[0].message.content).split()[0]


def _error(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code, resp.text


def test_a_promotion_serves_the_adapter_audited_and_survives_a_restart(
    setup: tuple[FakeVLLM, GatewayServer, World, Any],
) -> None:
    vllm, gw, w, config = setup
    admin = Client(gw.base, MASTER, gw)
    lead_a = admin.as_(w.keys["team_admin:a"])
    service_a, service_b = w.keys["service:a"], w.keys["service:b"]
    assert _answer(gw, service_a) == _answer(gw, MASTER) == "[base]"

    done = admin.ok("POST", f"{A}/support-a/promote", {"model": "support-bot"})
    assert (done["adapter"], done["model"], done["team_id"]) == ("support-a", "support-bot", None)
    assert _answer(gw, MASTER) == _answer(gw, service_b) == "[support-a]"
    team = lead_a.ok("POST", f"{A}/team-a-bot/promote", {"model": "support-bot", "team": "team-a"})
    assert team["team_id"] == "team-a"
    assert _answer(gw, service_a) == "[team-a-bot]"
    assert _answer(gw, service_b) == "[support-a]"
    assert sorted(vllm.adapters) == ["support-a", "team-a-bot"]

    entries = admin.ok("GET", "/admin/v1/audit", params={"action": "tuning.adapter.promote"})
    targets = [(e["target"], e["detail"]) for e in entries["data"]]
    assert ("adapter:support-a", {"model": "support-bot", "team_id": None}) in targets
    assert ("adapter:team-a-bot", {"model": "support-bot", "team_id": "team-a"}) in targets

    # Refusals: nothing changes
    _error(admin.call("POST", f"{A}/tainted-a/promote", {"model": "support-bot"}), 409,
           "adapter_tainted")  # fmt: skip
    _error(admin.call("POST", f"{A}/other-a/promote", {"model": "support-bot"}), 409,
           "adapter_base_mismatch")  # fmt: skip
    _error(admin.call("POST", f"{A}/support-a/promote", {"model": "sim"}), 409,
           "no_adapter_deployment")  # fmt: skip
    _error(admin.call("POST", f"{A}/nope/promote", {"model": "support-bot"}), 404,
           "adapter_not_found")  # fmt: skip
    _error(admin.call("POST", f"{A}/support-a/promote", {"model": "nope"}), 404,
           "model_not_found")  # fmt: skip
    _error(lead_a.call("POST", f"{A}/team-a-bot/promote", {"model": "support-bot",
           "team": "team-b"}), 403, "outside_scope")  # fmt: skip
    _error(lead_a.call("POST", f"{A}/team-a-bot/promote", {"model": "support-bot"}), 403,
           "outside_scope")  # fmt: skip
    # another team's adapter is not there for a team role
    _error(lead_a.call("POST", f"{A}/support-a/promote", {"model": "support-bot",
           "team": "team-a"}), 404, "adapter_not_found")  # fmt: skip
    assert _answer(gw, service_a) == "[team-a-bot]" and _answer(gw, MASTER) == "[support-a]"

    gw.stop()  # a restart reads the promotions back from the database
    with GatewayServer(config) as again:
        assert _answer(again, service_a) == "[team-a-bot]"
        assert _answer(again, service_b) == "[support-a]"
        # Taking promotions back: the config file's adapter (none here: the base) serves again
        admin = Client(again.base, MASTER, again)
        lead_a = admin.as_(w.keys["team_admin:a"])
        team_a = {"model": "support-bot", "team": "team-a"}
        lead_a.ok("POST", f"{A}/team-a-bot/demote", team_a)
        assert _answer(again, service_a) == "[support-a]"
        # a promoted adapter is not deleted from under the model that serves it
        _error(admin.call("DELETE", f"{A}/support-a"), 409, "adapter_promoted")
        assert _answer(again, MASTER) == "[support-a]"
        admin.ok("POST", f"{A}/support-a/demote", {"model": "support-bot"})
        assert _answer(again, service_a) == _answer(again, MASTER) == "[base]"
        _error(lead_a.call("POST", f"{A}/team-a-bot/demote", team_a), 404, "promotion_not_found")
        demoted = admin.ok("GET", "/admin/v1/audit", params={"action": "tuning.adapter.demote"})
        assert {e["target"] for e in demoted["data"]} == {"adapter:support-a", "adapter:team-a-bot"}
        assert admin.ok("DELETE", f"{A}/support-a")["object"] == "adapter.deleted"  # demoted
    with GatewayServer(config) as third:  # and they stay taken back
        assert _answer(third, service_a) == "[base]"


def test_adapter_against_base_as_an_experiment_sticky_with_statistics(
    setup: tuple[FakeVLLM, GatewayServer, World, Any],
) -> None:
    vllm, gw, _, _ = setup
    admin = Client(gw.base, MASTER, gw)
    spec = {
        "name": "support-a-vs-base",
        "traffic": {"model": "support-bot"},
        "unit": "end_user",
        "variants": [{"name": "base"}, {"name": "adapter", "model": "support-bot-adapter"}],
        "metric": "thumbs",
        "min_units": 5,
    }
    admin.ok("POST", "/admin/v1/experiments", spec)
    seen: dict[str, set[tuple[str, str]]] = {}
    traces: dict[str, list[str]] = {"base": [], "adapter": []}
    with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as client:
        for _ in range(2):
            for i in range(12):
                raw = client.chat.completions.with_raw_response.create(
                    model="support-bot", messages=MSG, user=f"user-{i}"
                )
                text = str(raw.parse().choices[0].message.content).split()[0]
                variant = raw.headers["x-opsgate-variant"]
                seen.setdefault(f"user-{i}", set()).add((variant, text))
                traces[variant].append(raw.headers["x-opsgate-trace-id"])
    assert all(len(s) == 1 for s in seen.values()), seen  # sticky, and one answerer per user
    pairs = {next(iter(s)) for s in seen.values()}
    assert pairs == {("base", "[base]"), ("adapter", "[support-a]")}
    assert len(vllm.calls_to("/v1/load_lora_adapter")) == 1

    for variant, value in (("base", False), ("adapter", True)):
        for trace_id in traces[variant]:
            resp = admin.call(
                "POST", "/v1/feedback", {"trace_id": trace_id, "metric": "thumbs", "value": value}
            )
            assert resp.status_code in (200, 201, 202), resp.text
    units = {v: len({u for u, s in seen.items() if next(iter(s))[0] == v}) for v in traces}
    deadline = time.monotonic() + 20
    while True:
        report = admin.ok("GET", f"/admin/v1/experiments/{spec['name']}")
        stats = {v["name"]: v for v in report["stats"]["variants"]}
        if all(stats[v]["scored_units"] >= units[v] for v in units):
            break
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    assert stats["adapter"]["mean"] == 1.0 and stats["base"]["mean"] == 0.0
