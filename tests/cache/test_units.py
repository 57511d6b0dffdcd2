"""Pure parts of the cache: keys, directives and policy, and folding/replaying answers."""

from __future__ import annotations

from typing import Any

import pytest

from opsgate.access.principal import Principal
from opsgate.cache.answer import CachedAnswer, StreamFold, replay_body, replay_chunks
from opsgate.cache.keys import exact_key, namespace_of, split_last_user
from opsgate.cache.policy import decide, directives, parse_header, policy_for
from opsgate.chat import ChatRequest, Usage
from opsgate.config.cache import CacheConfig
from opsgate.errors import BadRequestError


def req(*messages: dict[str, Any], **params: Any) -> ChatRequest:
    return ChatRequest("m", list(messages) or [{"role": "user", "content": "hi"}], params=params)


def test_key_ignores_labels_and_transport_but_not_output_fields() -> None:
    base = exact_key("ns", req(temperature=0))
    assert exact_key("ns", req(temperature=0.0, user="u", metadata={"a": "b"})) == base
    assert exact_key("ns", req(temperature=0, stream_options={"include_usage": True})) == base
    assert exact_key("ns", req(temperature=0, top_p=None)) == base
    assert exact_key("other", req(temperature=0)) != base
    assert exact_key("ns", req(temperature=0, seed=1)) != base
    assert exact_key("ns", req(temperature=0, brand_new_param=True)) != base


def test_split_last_user() -> None:
    system = {"role": "system", "content": "be brief"}
    text, before = split_last_user(req(system, {"role": "user", "content": "q?"}))
    assert text == "q?" and before == [system]
    tool = {"role": "tool", "content": "42", "tool_call_id": "c"}
    assert split_last_user(req({"role": "user", "content": "q"}, tool))[0] is None


def test_namespaces() -> None:
    team = Principal(key_id="k", team_id="t")
    assert namespace_of(team, None, "team") == "team:t"
    assert namespace_of(Principal(key_id="k"), None, "team") == "key:k"
    assert namespace_of(team, "u", "end_user") == "user:k:u"
    assert namespace_of(team, None, "shared") == "shared"
    assert namespace_of(None, None, "key") == "key:anonymous"


def test_directives_and_policy() -> None:
    assert parse_header("no-cache, TTL=5").ttl == 5.0
    with pytest.raises(BadRequestError):
        parse_header("maybe")
    found = directives({"x-opsgate-cache": "no-store"}, req(cache={"ttl": 9}))
    assert (found.no_store, found.ttl, found.opt_in) == (True, 9.0, True)
    config = CacheConfig.model_validate(
        {"teams": {"t": {"mode": "always"}}, "keys": {"k2": {"mode": "off"}}}
    )
    assert policy_for(config, Principal(key_id="k1", team_id="t")).mode == "always"
    assert policy_for(config, Principal(key_id="k2", team_id="t")).mode == "off"
    default = config.default
    assert decide(default, directives({}, req()), req()).reason == "not-deterministic"
    capped = decide(default, parse_header("ttl=99999999"), req())
    assert capped.read and capped.ttl == default.max_ttl
    with pytest.raises(ValueError, match="max_ttl"):
        CacheConfig.model_validate({"default": {"ttl": 10, "max_ttl": 5}})


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {"id": "c1", "model": "up", "created": 1, "choices": [choice]}


def test_fold_and_replay_round_trip() -> None:
    fold = StreamFold()
    fold.add(chunk({"role": "assistant", "content": ""}))
    fold.add(chunk({"content": "Hel"}))
    fold.add(chunk({"content": "lo"}))
    call = {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": "{"}}
    fold.add(chunk({"tool_calls": [call]}))
    fold.add(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}))
    assert fold.completion(None) is None, "not finished yet"
    fold.add(chunk({}, "tool_calls"))
    body = fold.completion(Usage(3, 4))
    assert body is not None
    message = body["choices"][0]["message"]
    assert message["content"] == "Hello"
    assert message["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert body["usage"]["total_tokens"] == 7

    answer = CachedAnswer.loads(CachedAnswer(body, 12, 1.0).dumps())
    assert answer.cost_micros == 12 and answer.usage == Usage(3, 4)
    assert replay_body(answer, "new")["id"] == "new"
    refold = StreamFold()
    for piece in replay_chunks(answer, "new", include_usage=True):
        refold.add(piece)
    again = refold.completion(Usage(3, 4))
    assert again is not None and again["choices"] == body["choices"]
    assert replay_chunks(answer, "x", include_usage=True)[-1]["usage"]["total_tokens"] == 7
    assert "usage" not in replay_chunks(answer, "x", include_usage=False)[-1]


def test_build_refuses_a_shared_semantic_cache_without_redis() -> None:
    from opsgate.cache import CacheConfigError, build_cache

    config = CacheConfig.model_validate({"semantic": {"enabled": True, "shared": True}})
    with pytest.raises(CacheConfigError, match=r"exact\.backend: redis"):
        build_cache(config)
    with pytest.raises(CacheConfigError, match="redis_url"):
        build_cache(CacheConfig.model_validate({"exact": {"backend": "redis"}}))
    assert build_cache(CacheConfig.model_validate({"enabled": False})) is None
