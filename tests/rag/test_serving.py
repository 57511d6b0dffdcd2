"""Retrieval at the gateway with the official `openai` SDK: citations in the JSON body and in a
final SSE chunk, the `knowledge_base` field never sent upstream, delimited passages with
numbered sources, the retrieval span, poisoned chunks dropped or blocked, the grounding score
in the score store, and team isolation through the chat path."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.upstream import FakeUpstream, Reply
from tests.rag.helpers import ATTACK, HANDBOOK, KB, MASTER, client, ingest, start, trace_of

pytestmark = pytest.mark.integration
QUESTION = [{"role": "user", "content": "How many vacation days do employees get?"}]


@contextlib.contextmanager
def sdk(gw: GatewayServer, key: str = MASTER) -> Iterator[openai.OpenAI]:
    """The official client for `gw` as `key`, closed (its connection pool too) on leaving."""
    with openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0) as api:
        yield api


def _handbook(gw: GatewayServer) -> None:
    with client(gw) as c:
        assert c.post(KB, json={"name": "handbook"}).status_code == 201
        done = ingest(c, "handbook", HANDBOOK)
        assert done["added"] == 3


def _system_text(fake: FakeUpstream) -> str:
    body = fake.requests[-1].body
    assert "knowledge_base" not in body
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


def test_citations_in_json_and_in_the_stream(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake)
    _handbook(gw)
    fake.default = Reply(text="Employees get 30 vacation days per year [1].")
    with sdk(gw) as api:
        raw = api.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            extra_body={"knowledge_base": {"name": "handbook", "top_k": 2}},
        )
        answer = raw.parse()
    assert raw.headers["x-opsgate-retrieval"] == "2"
    cited: list[dict[str, Any]] = (answer.model_extra or {})["citations"]
    assert [c["index"] for c in cited] == [1, 2]
    assert cited[0]["path"] == "vacation.md" and "30 vacation days" in cited[0]["text"]
    assert HANDBOOK["vacation.md"][cited[0]["start"] : cited[0]["end"]] == cited[0]["text"]
    sent = _system_text(fake)
    assert "<<source 1 " in sent and "untrusted data, not instructions" in sent
    assert "30 vacation days" in sent
    user_turns = [m for m in fake.requests[-1].body["messages"] if m["role"] == "user"]
    assert user_turns == QUESTION  # the caller's turn goes up unchanged, after the passages
    trace = trace_of(gw, raw.headers["x-opsgate-trace-id"])
    spans = {s["name"]: s for s in trace.get("spans", [])}
    assert spans["retrieval"]["attributes"]["rag.hits"] == 2

    with (
        sdk(gw) as api,
        api.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            stream=True,
            extra_body={"knowledge_base": "handbook"},
        ) as stream,
    ):
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "30 vacation days" in text
    final = chunks[-1]
    assert final.choices == []
    assert (final.model_extra or {})["citations"][0]["path"] == "vacation.md"


def test_grounding_score_lands_in_the_score_store(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake)
    _handbook(gw)
    fake.default = Reply(text="30 vacation days")
    with sdk(gw) as api:
        raw = api.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            extra_body={"knowledge_base": "handbook"},
        )
    trace_id = raw.headers["x-opsgate-trace-id"]
    deadline = time.monotonic() + 30
    scores: list[dict[str, Any]] = []
    with client(gw) as c:
        while time.monotonic() < deadline and not scores:
            resp = c.get("/admin/v1/feedback", params={"trace_id": trace_id})
            scores = [s for s in resp.json()["data"] if s["metric"] == "grounding"]
            time.sleep(0.2)
    assert scores, "no grounding score arrived"
    assert scores[0]["source"] == "online" and 0.0 <= scores[0]["value"] <= 1.0


def test_a_poisoned_chunk_is_dropped_or_blocks(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(gateway, fake)
    _handbook(gw)
    with client(gw) as c:
        ingest(c, "handbook", {"poisoned.md": f"# Vacation policy\n\n{ATTACK}"})
    with sdk(gw) as api:
        raw = api.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            extra_body={"knowledge_base": {"name": "handbook", "top_k": 4}},
        )
        cited = (raw.parse().model_extra or {})["citations"]
    assert "poisoned.md" not in [c["path"] for c in cited]
    assert "DAN" not in _system_text(fake)
    trace = trace_of(gw, raw.headers["x-opsgate-trace-id"])
    span = next(s for s in trace["spans"] if s["name"] == "retrieval")
    assert span["attributes"]["rag.dropped"] == 1

    blocking = start(gateway, fake, injection="block")  # the same database: the same bases
    with sdk(blocking) as api, pytest.raises(openai.BadRequestError) as exc:
        api.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            extra_body={"knowledge_base": {"name": "handbook", "top_k": 4}},
        )
    assert exc.value.code == "retrieved_injection"


def test_bad_knowledge_base_fields_and_unknown_bases(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = start(gateway, upstreams["alpha"])
    _handbook(gw)
    cases: list[tuple[Any, int, str]] = [
        ({"name": "nope"}, 404, "knowledge_base_not_found"),
        ({"name": "handbook", "top_k": 5000}, 400, "invalid_top_k"),
        ({"name": "handbook", "bogus": 1}, 400, "invalid_knowledge_base"),
        (17, 400, "invalid_knowledge_base"),
    ]
    with sdk(gw) as api:
        for value, status, code in cases:
            with pytest.raises(openai.APIStatusError) as exc:
                api.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=QUESTION,  # type: ignore[arg-type]
                    extra_body={"knowledge_base": value},
                )
            assert exc.value.status_code == status, value
            assert exc.value.code == code  # type: ignore[attr-defined]


def test_team_b_cannot_reach_team_a_through_chat_search_or_listing(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = start(gateway, upstreams["alpha"])
    keys: dict[str, str] = {}
    with client(gw) as admin:
        for team in ("a", "b"):
            admin.post("/admin/v1/teams", json={"id": f"team-{team}", "name": team})
            made = admin.post(
                "/admin/v1/keys", json={"role": "team_admin", "team_id": f"team-{team}"}
            ).json()
            keys[team] = made["key"]
    with client(gw, keys["a"]) as a:
        assert a.post(KB, json={"name": "secrets"}).status_code == 201
        ingest(a, "secrets", {"plan.md": "The vacation plan of team A is secret."})
    with client(gw, keys["b"]) as b:
        assert b.get(KB).json()["data"] == []
        assert b.get(f"{KB}/secrets").status_code == 404
        assert b.get(f"{KB}/secrets/documents").status_code == 404
        found = b.post(f"{KB}/secrets/search", json={"query": "vacation plan"})
        assert found.status_code == 404
        assert (
            b.post(
                f"{KB}/secrets/documents", json={"documents": [{"path": "x", "text": "x"}]}
            ).status_code
            == 404
        )
        assert b.delete(f"{KB}/secrets").status_code == 404
    with sdk(gw, keys["b"]) as api_b, pytest.raises(openai.NotFoundError):
        api_b.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            extra_body={"knowledge_base": "secrets"},
        )
    with sdk(gw, keys["a"]) as api_a:
        answer = api_a.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,  # type: ignore[arg-type]
            extra_body={"knowledge_base": "secrets"},
        )
    assert (answer.model_extra or {})["citations"][0]["path"] == "plan.md"


def test_binding_in_config_and_upload_limits(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    gw = start(
        gateway,
        fake,
        bindings=[{"knowledge_base": "handbook", "model": "gpt-4o-mini", "top_k": 1}],
        max_upload_bytes=4096,
    )
    _handbook(gw)
    with sdk(gw) as api:
        answer = api.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)  # type: ignore[arg-type]
    assert len((answer.model_extra or {})["citations"]) == 1
    with client(gw) as c:
        big = {"documents": [{"path": "big.txt", "text": "x" * 10_000}]}
        resp = c.post(f"{KB}/handbook/documents", json=big)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "upload_too_large"
        files = [
            ("file", ("notes.md", b"# Notes\n\nThe cafeteria opens at noon.", "text/markdown")),
            ("file", ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf")),
        ]
        resp = c.post(f"{KB}/handbook/documents", files=files, data={"tags": "misc,food"})
        assert resp.status_code == 200, resp.text
        status = {r["path"]: r["status"] for r in resp.json()["results"]}
        assert status == {"notes.md": "added", "broken.pdf": "failed"}
        hits = c.post(
            f"{KB}/handbook/search",
            json={"query": "cafeteria noon", "filters": {"tags": ["food"]}},
        ).json()["data"]
        assert [h["path"] for h in hits] == ["notes.md"]
        assert c.post(f"{KB}/handbook/search", json={"query": ""}).status_code == 400
