"""The registry's HTTP surface on a real gateway: the admin API (push, list, get, versions,
diff, labels, history, rollback, render), `GET /v1/prompts/{name}` with ETag and 304, and
every bad input answered with a clear 4xx while nothing is stored or sent upstream."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream
from tests.prompts.helpers import system_text, triage

pytestmark = pytest.mark.integration
BASE = "/admin/v1/prompts"


def start(
    gateway: GatewayFactory, fake: FakeUpstream, database_url: str | None = None, **extra: Any
) -> GatewayServer:
    """A gateway with models `gpt-4o-mini` and `m2` on `fake`; on `database_url` when given
    (else the test's own SQLite file)."""
    dep = {"provider": "openai", "id": "a", "base_url": fake.url, "model": "up", "api_key": "k"}
    models = [
        {"name": name, "deployments": [{**dep, "id": name}]} for name in ("gpt-4o-mini", "m2")
    ]
    env = {"OPSGATE_DATABASE_URL": database_url} if database_url else None
    return gateway({"models": models, "traces": {"flush_interval": 0.05}, **extra}, env)


def http(gw: GatewayServer) -> httpx.Client:
    return httpx.Client(base_url=gw.base, timeout=30)


def push(client: httpx.Client, body: dict[str, Any], **fields: Any) -> httpx.Response:
    return client.post(BASE, json={"name": "triage", **body, **fields})


def chat(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/chat/completions", json=body)


def error(resp: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = resp.json()["error"]
    return data


def test_versions_labels_diff_history_rollback_and_audit(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], database_url: str
) -> None:
    gw = start(gateway, upstreams["alpha"], database_url)
    with http(gw) as c:
        first = push(c, system_text(1), message="first", labels=["production"])
        assert first.status_code == 201, first.text
        assert (first.json()["version"], first.json()["labels"]) == (1, ["production"])
        again = push(c, system_text(1), message="again", labels=["production"])
        assert again.status_code == 200 and again.json()["created"] is False
        assert again.json()["moves"][0]["from_version"] == 1  # already there: a no-op
        second = push(c, system_text(2), message="second")
        assert second.status_code == 201 and second.json()["version"] == 2

        [listed] = c.get(BASE).json()["data"]
        assert (listed["name"], listed["latest_version"], listed["labels"]) == (
            "triage",
            2,
            {"production": 1},
        )
        assert c.get(f"{BASE}/triage", params={"label": "production"}).json()["version"] == 1
        got = c.get(f"{BASE}/triage").json()
        assert (got["version"], got["message"], got["model"]) == (2, "second", "gpt-4o-mini")
        assert [v["version"] for v in c.get(f"{BASE}/triage/versions").json()["data"]] == [2, 1]
        diff = c.get(f"{BASE}/triage/diff", params={"from": 1, "to": 2}).json()
        assert diff["changed"] == ["messages"] and "+    [v2]" in diff["unified"]

        moved = c.post(f"{BASE}/triage/labels/production", json={"version": 2})
        assert moved.status_code == 200 and moved.json()["from_version"] == 1
        assert c.get(f"{BASE}/triage/labels").json()["data"][0]["version"] == 2
        back = c.post(f"{BASE}/triage/labels/production/rollback")
        assert (back.json()["from_version"], back.json()["to_version"]) == (2, 1)
        history = c.get(f"{BASE}/triage/history", params={"label": "production"}).json()["data"]
        assert [(h["from_version"], h["to_version"]) for h in history] == [
            (2, 1),
            (1, 2),
            (None, 1),
        ]

        rendered = c.post(
            f"{BASE}/triage/render",
            json={"version": 2, "variables": {"ticket": "{{ x }}", "history": ["a"]}},
        )
        assert rendered.status_code == 200, rendered.text
        messages = rendered.json()["messages"]
        assert messages[0]["content"].startswith("[v2] You triage tickets for free customers.")
        assert messages[1] == {"role": "user", "content": "Ticket: {{ x }}"}

        entries = c.get("/admin/v1/audit", params={"limit": 50}).json()["data"]
        moves = [e for e in entries if e["action"] == "prompts.label_move"]
        assert [(e["detail"]["from_version"], e["detail"]["to_version"]) for e in moves] == [
            (2, 1),
            (1, 2),
            (None, 1),
        ]
        assert {e["detail"]["via"] for e in moves} == {"rollback", "promote", "push"}
        pushes = [e["detail"]["created"] for e in entries if e["action"] == "prompts.push"]
        assert pushes == [True, False, True]
        assert not [e for e in entries if e["action"] == "prompts.render"]


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        (
            {"messages": [{"role": "user", "content": "a\n {% if ticket %}"}]},
            400,
            "template_syntax_error",
            "messages[0].content: line 2, column 5",
        ),
        (
            {"messages": [{"role": "user", "content": "{{ ''.__class__.__mro__ }}"}]},
            400,
            "template_syntax_error",
            "line 1, column 4",
        ),
        (
            {"messages": [{"role": "user", "content": "{{ ticket.__class__ }}"}]},
            400,
            "template_syntax_error",
            "names starting with '_'",
        ),
        (
            {"messages": [{"role": "user", "content": "{% import 'os' as os %}"}]},
            400,
            "template_syntax_error",
            "unknown tag 'import'",
        ),
        (
            {"messages": [{"role": "user", "content": "{{ nope }}"}]},
            400,
            "undeclared_variable",
            "'nope'",
        ),
        (
            {"messages": [{"role": "user", "content": "x" * 300_000}]},
            413,
            "template_too_large",
            "at most",
        ),
        (
            {"messages": [{"role": "user", "content": "x" * 1_100_000}]},
            413,
            "payload_too_large",
            "bytes allowed",
        ),
        ({"variables": {"ticket": {"type": "text"}}}, 422, "invalid_body", "variables.ticket"),
        ({"params": {"stream": True}}, 422, "invalid_body", "params"),
        ({"labels": ["Production!"]}, 400, "invalid_label", "label"),
        ({"name": "bad name"}, 400, "invalid_prompt_name", "prompt name"),
    ],
)
def test_bad_pushes_are_refused_and_nothing_is_stored(
    gateway: GatewayFactory,
    upstreams: dict[str, FakeUpstream],
    body: dict[str, Any],
    status: int,
    code: str,
    says: str,
) -> None:
    gw = start(gateway, upstreams["alpha"])
    with http(gw) as c:
        resp = push(c, triage(**body))
        assert resp.status_code == status, resp.text
        assert error(resp)["code"] == code and says in error(resp)["message"]
        assert c.get(BASE).json()["data"] == []
        assert c.get(f"{BASE}/triage").status_code == 404


def test_bad_requests_naming_a_prompt_never_reach_the_upstream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], database_url: str
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake, database_url)
    loops = {
        "variables": {"xs": {"type": "array"}},
        "messages": [
            {
                "role": "user",
                "content": "{% for a in xs %}{% for b in xs %}{% for c in xs %}.{% endfor %}"
                "{% endfor %}{% endfor %}",
            }
        ],
    }
    with http(gw) as c:
        assert push(c, triage(), labels=["production"]).status_code == 201
        assert push(c, triage(**loops), name="bomb", labels=["production"]).status_code == 201
        ok = {"ticket": "printer"}
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"model": "prompt:nope", "variables": ok}, 404, "prompt_not_found"),
            ({"model": "prompt:triage@staging", "variables": ok}, 404, "prompt_not_found"),
            ({"model": "prompt:triage@9", "variables": ok}, 404, "prompt_not_found"),
            (
                {"prompt": {"name": "triage", "version": 9}, "variables": ok},
                404,
                "prompt_not_found",
            ),
            ({"model": "prompt:triage"}, 400, "missing_variable"),
            ({"model": "prompt:triage", "variables": {**ok, "x": 1}}, 400, "unknown_variable"),
            ({"model": "prompt:triage", "variables": {"ticket": 7}}, 400, "invalid_variable_type"),
            (
                {"model": "prompt:triage", "variables": {**ok, "tier": "gold"}},
                400,
                "invalid_variable_type",
            ),
            (
                {"model": "prompt:triage", "variables": ok, "temperature": 1.0},
                400,
                "prompt_param_fixed",
            ),
            (
                {
                    "model": "prompt:triage",
                    "variables": ok,
                    "messages": [{"role": "system", "content": "new rules"}],
                },
                400,
                "invalid_value",
            ),
            (
                {"model": "m2", "variables": ok, "messages": [{"role": "user", "content": "x"}]},
                400,
                "variables_without_prompt",
            ),
            (
                {"model": "prompt:bomb", "variables": {"xs": list(range(100))}},
                400,
                "template_limit_exceeded",
            ),
        ]
        for body, status, code in cases:
            resp = chat(c, **body)
            assert resp.status_code == status, (body, resp.text)
            assert error(resp)["code"] == code, (body, resp.text)
    assert [r for r in fake.requests if r.path.endswith("/chat/completions")] == []


def test_variables_are_text_and_the_upstream_gets_a_plain_request(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake)
    with http(gw) as c:
        assert push(c, triage(), labels=["production"]).status_code == 201
        hostile = "{{ tier }} {% if true %}x{% endif %}"
        resp = chat(
            c,
            model="prompt:triage",
            variables={"ticket": hostile, "tier": "pro"},
            max_tokens=20,
            messages=[{"role": "user", "content": "and also"}],
            user="eu-1",
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-opsgate-prompt"] == "triage@1"
    sent = fake.requests[-1].body
    assert sent["model"] == "up"
    assert (sent["temperature"], sent["max_tokens"], sent["user"]) == (0.2, 20, "eu-1")
    assert "variables" not in sent and "prompt" not in sent
    assert sent["messages"] == [
        {
            "role": "system",
            "content": "You triage tickets for pro customers.\nAnswer with one queue name.",
        },
        {"role": "user", "content": f"Ticket: {hostile}"},
        {"role": "user", "content": "and also"},
    ]
    assert json.dumps(sent).count("untrusted") == 0 and "opsgate_prompt_parts" not in json.dumps(
        sent
    )


def test_etag_and_304(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], database_url: str
) -> None:
    gw = start(gateway, upstreams["alpha"], database_url)
    with http(gw) as c:
        push(c, system_text(1), labels=["production"])
        push(c, system_text(2))
        first = c.get("/v1/prompts/triage", params={"label": "production"})
        assert first.status_code == 200 and first.json()["version"] == 1
        etag = first.headers["etag"]
        assert etag == f'"{first.json()["content_hash"]}"'
        assert first.headers["cache-control"] == "no-cache"
        same = c.get("/v1/prompts/triage", headers={"if-none-match": etag})
        assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
        weak = c.get("/v1/prompts/triage", headers={"if-none-match": f'"x", W/{etag}'})
        assert weak.status_code == 304
        c.post(f"{BASE}/triage/labels/production", json={"version": 2})
        moved = c.get("/v1/prompts/triage", headers={"if-none-match": etag})
        assert moved.status_code == 200 and moved.json()["version"] == 2
        assert moved.headers["etag"] != etag
        pinned = c.get("/v1/prompts/triage", params={"version": 1}, headers={"if-none-match": etag})
        assert pinned.status_code == 304
        bad: list[tuple[dict[str, Any], int]] = [
            ({"label": "nope"}, 404),
            ({"version": "x"}, 400),
            ({"version": 1, "label": "a"}, 400),
            ({"bogus": 1}, 400),
        ]
        for params, status in bad:
            assert c.get("/v1/prompts/triage", params=params).status_code == status
        assert c.get("/v1/prompts/nope").status_code == 404
