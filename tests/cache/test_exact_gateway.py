"""The exact cache through a real gateway: headers, policy, directives, TTL, replay, purge."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from opsgate.access.principal import Principal
from tests.cache.conftest import CachedGateway
from tests.fixtures.gateway import GatewayServer
from tests.fixtures.gateway import wait_for_trace as trace
from tests.fixtures.upstream import BreakStream, FakeUpstream, Reply, ToolCall, unused_port

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "say hello"}]
BODY: dict[str, Any] = {"model": "m", "messages": MSG, "temperature": 0}


def post(gw: GatewayServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        return http.post("/v1/chat/completions", json=body, headers=headers)


def chat_posts(fake: FakeUpstream) -> int:
    return sum(1 for r in fake.requests if r.path.endswith("/chat/completions"))


def test_miss_then_hit_is_served_without_the_upstream_and_traced(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    first = post(gw, BODY)
    assert first.status_code == 200, first.text
    assert first.headers["x-opsgate-cache"] == "miss"
    second = post(gw, {**BODY, "user": "someone-else", "metadata": {"run": "2"}})
    assert second.headers["x-opsgate-cache"] == "hit-exact"
    assert chat_posts(fake) == 1, "the repeated request never reached the upstream"
    a, b = first.json(), second.json()
    assert b["choices"] == a["choices"] and b["usage"] == a["usage"]
    assert b["id"] != a["id"]
    assert "x-opsgate-deployment" not in second.headers

    hit = trace(gw, second.headers["x-opsgate-trace-id"])
    assert hit["cache"] == "hit-exact" and hit["cost_micros"] == 0 and hit["deployment"] is None
    lookup = next(s for s in hit["spans"] if s["name"] == "cache_lookup")
    assert lookup["attributes"]["tokens_saved"] == a["usage"]["total_tokens"]
    assert lookup["attributes"]["cost_saved_micros"] > 0
    miss = trace(gw, first.headers["x-opsgate-trace-id"])
    assert miss["cache"] == "miss"
    assert hit["cost_saved_micros"] == miss["cost_micros"] > 0 == miss["cost_saved_micros"]
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        usage = http.get("/admin/v1/usage", params={"since": "1h"}).json()["data"]
    assert sum(row["cost_saved_micros"] for row in usage) == miss["cost_micros"]
    assert {s["name"] for s in miss["spans"]} >= {"cache_lookup", "cache_store", "upstream_attempt"}


def test_output_changing_fields_split_entries_and_others_do_not(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    assert post(gw, BODY).headers["x-opsgate-cache"] == "miss"
    assert post(gw, {**BODY, "temperature": 0.0}).headers["x-opsgate-cache"] == "hit-exact"
    parts = {
        **BODY,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "say hello"}]}],
    }
    assert post(gw, parts).headers["x-opsgate-cache"] == "hit-exact"
    assert post(gw, {**BODY, "max_tokens": 5}).headers["x-opsgate-cache"] == "miss"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert post(gw, {**BODY, "tools": tools}).headers["x-opsgate-cache"] == "miss"
    assert post(gw, {**BODY, "model": "m", "seed": 1}).headers["x-opsgate-cache"] == "miss"
    assert chat_posts(fake) == 4


def test_non_deterministic_requests_bypass_unless_opted_in(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    plain = {"model": "m", "messages": MSG}
    assert post(gw, plain).headers["x-opsgate-cache"] == "bypass"
    assert post(gw, plain).headers["x-opsgate-cache"] == "bypass"
    assert chat_posts(fake) == 2
    assert post(gw, plain, **{"x-opsgate-cache": "ttl=60"}).headers["x-opsgate-cache"] == "miss"
    assert post(gw, {**plain, "cache": True}).headers["x-opsgate-cache"] == "hit-exact"
    assert chat_posts(fake) == 3


def test_directives_no_cache_no_store_and_the_body_field_is_stripped(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    resp = post(gw, {**BODY, "cache": {"no-store": True}})
    assert resp.headers["x-opsgate-cache"] == "miss"
    assert "cache" not in fake.requests[-1].body, "the cache field never reaches the upstream"
    assert post(gw, BODY).headers["x-opsgate-cache"] == "miss", "no-store stored nothing"
    assert post(gw, BODY).headers["x-opsgate-cache"] == "hit-exact"
    fake.script(Reply(text="fresher"))
    fresh = post(gw, BODY, **{"x-opsgate-cache": "no-cache"})
    assert fresh.headers["x-opsgate-cache"] == "bypass"
    assert fresh.json()["choices"][0]["message"]["content"] == "fresher"
    again = post(gw, BODY)
    assert again.headers["x-opsgate-cache"] == "hit-exact"
    assert again.json()["choices"][0]["message"]["content"] == "fresher", "no-cache refreshed"
    assert post(gw, {**BODY, "cache": False}).headers["x-opsgate-cache"] == "bypass"
    assert chat_posts(fake) == 4


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"x-opsgate-cache": "sometimes"}, {}),
        ({"x-opsgate-cache": "ttl=-3"}, {}),
        ({}, {"cache": "yes"}),
        ({}, {"cache": {"ttl": 0}}),
        ({}, {"cache": {"forever": True}}),
    ],
)
def test_bad_directives_are_400(
    cached: CachedGateway, headers: dict[str, str], body: dict[str, Any]
) -> None:
    resp = post(cached(), {**BODY, **body}, **headers)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_cache_directive"


def test_ttl_expiry(cached: CachedGateway, upstreams: dict[str, FakeUpstream]) -> None:
    gw, fake = cached({"default": {"ttl": 30}}), upstreams["alpha"]
    short = {"x-opsgate-cache": "ttl=0.5"}
    assert post(gw, BODY, **short).headers["x-opsgate-cache"] == "miss"
    assert post(gw, BODY).headers["x-opsgate-cache"] == "hit-exact"
    time.sleep(0.7)
    assert post(gw, BODY).headers["x-opsgate-cache"] == "miss", "expired"
    assert chat_posts(fake) == 2


def test_stream_and_non_stream_serve_each_other(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    fake.script(Reply(text="one two three four", stream_chunks=4))
    streamed = list(client.chat.completions.create(stream=True, **BODY))
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "one two three four"

    raw = client.chat.completions.with_raw_response.create(**BODY)
    assert raw.headers["x-opsgate-cache"] == "hit-exact"
    whole = raw.parse()
    assert whole.choices[0].message.content == text
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens == 4

    other = [{"role": "user", "content": "another question"}]
    first = client.chat.completions.create(model="m", messages=other, temperature=0)
    with client.chat.completions.with_streaming_response.create(
        model="m",
        messages=other,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        assert resp.headers["x-opsgate-cache"] == "hit-exact"
        chunks = list(resp.parse())
    replayed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert replayed == first.choices[0].message.content
    assert chunks[-1].usage is not None and first.usage is not None
    assert chunks[-1].usage.total_tokens == first.usage.total_tokens
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chat_posts(fake) == 2


def test_stream_hit_hides_usage_unless_asked(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = cached()
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    client.chat.completions.create(**BODY)
    chunks = list(client.chat.completions.create(stream=True, **BODY))
    assert all(c.usage is None for c in chunks)
    assert chat_posts(upstreams["alpha"]) == 1


def test_tool_calls_survive_stream_to_json(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    fake.script(Reply(tool_call=ToolCall("get_weather", {"city": "Paris"})))
    client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0)
    streamed = list(client.chat.completions.create(stream=True, **BODY))
    assert streamed
    whole = client.chat.completions.create(**BODY)
    call = whole.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "get_weather"
    assert call[0].function.arguments.replace(" ", "") == '{"city":"Paris"}'
    assert whole.choices[0].finish_reason == "tool_calls"
    again = list(client.chat.completions.create(stream=True, **BODY))
    deltas = [t for c in again if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert chat_posts(fake) == 1


def test_a_cut_stream_is_not_cached(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw, fake = cached(), upstreams["alpha"]
    fake.script(BreakStream(after_chunks=2))
    with httpx.Client(base_url=gw.base, timeout=20) as http:
        http.post("/v1/chat/completions", json={**BODY, "stream": True})
    resp = post(gw, BODY)
    assert resp.headers["x-opsgate-cache"] == "miss"
    assert chat_posts(fake) >= 2


TEAMS = {
    "a1": Principal(key_id="a1", team_id="team-a"),
    "a2": Principal(key_id="a2", team_id="team-a"),
    "b1": Principal(key_id="b1", team_id="team-b"),
    "solo": Principal(key_id="solo"),
    "solo2": Principal(key_id="solo2"),
}


def test_no_cross_tenant_hits(cached: CachedGateway, upstreams: dict[str, FakeUpstream]) -> None:
    gw, fake = cached(keys=TEAMS), upstreams["alpha"]

    def as_key(key: str) -> str:
        return post(gw, BODY, authorization=f"Bearer {key}").headers["x-opsgate-cache"]

    assert as_key("a1") == "miss"
    assert as_key("a2") == "hit-exact", "one team shares its cache"
    assert as_key("b1") == "miss", "another team never sees it"
    assert as_key("solo") == "miss"
    assert as_key("solo2") == "miss", "keys without a team are their own namespace"
    assert as_key("solo") == "hit-exact"
    assert chat_posts(fake) == 4


def test_namespace_per_key_and_per_key_policy(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    config = {"namespace": "key", "keys": {"a2": {"mode": "off"}}, "teams": {}}
    gw, fake = cached(config, keys=TEAMS), upstreams["alpha"]

    def as_key(key: str) -> str:
        return post(gw, BODY, authorization=f"Bearer {key}").headers["x-opsgate-cache"]

    assert as_key("a1") == "miss"
    assert as_key("a1") == "hit-exact"
    assert as_key("a2") == "bypass", "this key's policy turns caching off"
    assert as_key("b1") == "miss"
    assert chat_posts(fake) == 3


def test_purge_and_erasure_through_the_admin_api(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = cached(keys=TEAMS)
    asks = [
        ("a1", "alice", "q1"),
        ("a1", "bob", "q2"),
        ("b1", "alice", "q3"),
        ("b1", "carol", "q4"),
    ]
    for key, user, text in asks:
        body = {**BODY, "messages": [{"role": "user", "content": text}], "user": user}
        assert post(gw, body, authorization=f"Bearer {key}").headers["x-opsgate-cache"] == "miss"

    def status(key: str, text: str) -> str:
        body = {**BODY, "messages": [{"role": "user", "content": text}]}
        return post(gw, body, authorization=f"Bearer {key}").headers["x-opsgate-cache"]

    with httpx.Client(base_url=gw.base, timeout=20) as admin:
        assert admin.get("/admin/v1/cache").json()["exact"]["entries"] == 4
        erased = admin.post("/admin/v1/cache/erase", json={"end_user": "alice"})
        assert erased.json() == {"purged": {"exact": 2, "semantic": 0}}
        assert admin.get("/admin/v1/cache").json()["exact"]["entries"] == 2
        bad = admin.post("/admin/v1/cache/purge", json={})
        assert bad.status_code == 400
        gone = admin.post("/admin/v1/cache/purge", json={"namespace": "team:team-b"})
        assert gone.json()["purged"]["exact"] == 1
    assert status("a1", "q1") == "miss"  # erased (alice)
    assert status("b1", "q3") == "miss"  # erased (alice)
    assert status("b1", "q4") == "miss"  # purged (team-b namespace)
    resp = post(
        gw, {**BODY, "messages": [{"role": "user", "content": "q2"}]}, authorization="Bearer a2"
    )
    assert resp.headers["x-opsgate-cache"] == "hit-exact"  # bob's entry stays
    key = next(
        s["attributes"]["key"]
        for s in trace(gw, resp.headers["x-opsgate-trace-id"])["spans"]
        if s["name"] == "cache_lookup"
    )
    with httpx.Client(base_url=gw.base, timeout=20) as admin:
        one = admin.delete(f"/admin/v1/cache/entries/{key}")
        assert one.json()["purged"]["exact"] == 1
        by_age = admin.post("/admin/v1/cache/purge", json={"older_than": "1h"})
        assert by_age.json()["purged"]["exact"] == 0
        everything = admin.post("/admin/v1/cache/purge", json={"all": True})
        assert everything.json()["purged"]["exact"] == 3  # q1, q3, q4 stored again
    assert status("a1", "q2") == "miss"


def test_a_cache_backend_that_is_down_never_fails_a_request(
    cached: CachedGateway, upstreams: dict[str, FakeUpstream]
) -> None:
    down = f"redis://127.0.0.1:{unused_port()}/0"
    gw = cached({"exact": {"backend": "redis", "redis_url": down, "timeout": 0.2}})
    for _ in range(2):
        resp = post(gw, BODY)
        assert resp.status_code == 200
        assert resp.headers["x-opsgate-cache"] == "bypass"
    assert chat_posts(upstreams["alpha"]) == 2
