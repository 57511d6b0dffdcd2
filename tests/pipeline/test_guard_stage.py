"""The guard stages in the real chat pipeline (`build_runtime`: real stages, real router, a real
fake upstream over HTTP), called without the HTTP server in front: where they sit, and what that
placement means for the cache, restore and stripped markers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from opsgate.cache.build import build_cache
from opsgate.chat import ChatChunk, ChatRequest, ChatResponse
from opsgate.errors import BadRequestError
from opsgate.pipeline.context import ChatCall, RequestContext
from opsgate.pipeline.stages.authenticate import Authenticate
from opsgate.pipeline.stages.best_of import PlanBestOf
from opsgate.pipeline.stages.cache import Cache
from opsgate.pipeline.stages.guard import InputGuard, OutputGuard
from opsgate.pipeline.stages.record import Record
from opsgate.pipeline.stages.settle import Settle
from opsgate.providers.transport import HTTPClient
from opsgate.runtime import build_runtime
from tests.fixtures import _wire as wire
from tests.fixtures.gateway import make_config
from tests.fixtures.upstream import FakeUpstream, Reply

pytestmark = pytest.mark.integration


class SplitUpstream(FakeUpstream):
    """Streams its answer three characters a chunk, so placeholders arrive cut in pieces."""

    def _answer(self, dialect: str, body: wire.JSON, reply: Reply) -> wire.Answer:
        answer = super()._answer(dialect, body, reply)
        pieces = [answer.text[i : i + 3] for i in range(0, len(answer.text), 3)]
        return dataclasses.replace(answer, pieces=pieces)


@pytest.fixture(scope="module")
def split() -> Iterator[SplitUpstream]:
    with SplitUpstream("split") as server:
        yield server


Runtime = Callable[..., Any]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    """`runtime(fake, guard, cache=None)`: a chat runtime on `fake`; its HTTP client is closed
    after the test."""
    http = HTTPClient()

    def build(
        fake: FakeUpstream, guard: dict[str, Any], cache: dict[str, Any] | None = None
    ) -> Any:
        dep = {"provider": "openai", "id": "a", "base_url": fake.url, "model": "up", "api_key": "k"}
        config = make_config(
            {"models": [{"name": "m", "deployments": [dep]}], "guard": guard, "cache": cache or {}}
        )
        service = build_cache(config.cache, None, embed_call=None) if cache else None
        return build_runtime(config, http, source="<test>", cache=service)

    yield build
    await http.aclose()


async def ask(rt: Any, text: str, *, stream: bool = False, **extra: Any) -> Any:
    req = ChatRequest("m", [{"role": "user", "content": text, **extra}], stream, {"temperature": 0})
    result = await rt.chat(ChatCall(RequestContext(headers={}), req))
    if isinstance(result, ChatResponse):
        return result.body["choices"][0]["message"]["content"]
    return "".join([c.text async for c in result])


def test_stage_order(runtime: Runtime, split: SplitUpstream) -> None:
    rt = runtime(split, {})
    kinds = [type(s) for s in rt.chat.stages]
    # PlanBestOf is always there (a best-of header on a model without best_of_n is a 400);
    # BestOfN only where some model has best_of_n
    assert kinds == [Record, Authenticate, PlanBestOf, InputGuard, Cache, OutputGuard, Settle]


async def test_a_cached_answer_is_restored_with_each_callers_own_values(
    runtime: Runtime, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    rt = runtime(
        fake, {"default": {"pii": "redact", "restore": True}}, {"default": {"mode": "always"}}
    )
    fake.default = Reply(text="Done, <EMAIL_1> is subscribed.")
    assert await ask(rt, "subscribe ann@example.com") == "Done, ann@example.com is subscribed."
    assert await ask(rt, "subscribe bob@example.org") == "Done, bob@example.org is subscribed."
    assert len(fake.requests) == 1, "the second caller's redacted prompt was a cache hit"
    assert fake.requests[0].body["messages"][0]["content"] == "subscribe <EMAIL_1>"


async def test_stream_restore_across_placeholders_cut_between_chunks(
    runtime: Runtime, split: SplitUpstream
) -> None:
    split.reset()
    rt = runtime(split, {"default": {"pii": "redact", "restore": True}})
    split.script(Reply(text="Mail <EMAIL_1> and <EMAIL_2>, not <EMAIL_3> or <PHONE_9> ok"))
    text = await ask(rt, "from ann@example.com to bob@example.org", stream=True)
    assert text == "Mail ann@example.com and bob@example.org, not <EMAIL_3> or <PHONE_9> ok"


async def test_untrusted_marks_are_stripped_even_with_the_guard_off(
    runtime: Runtime, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    rt = runtime(fake, {})
    assert await ask(rt, "hi", untrusted=True) == "hello from alpha"
    assert fake.requests[-1].body["messages"] == [{"role": "user", "content": "hi"}]


async def test_output_block_mid_stream_raises_after_the_clean_part(
    runtime: Runtime, split: SplitUpstream
) -> None:
    split.reset()
    rt = runtime(split, {"default": {"output_secrets": "block"}})
    key = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ0x"
    split.script(Reply(text=f"Here is a key you asked for: {key} enjoy"))
    req = ChatRequest("m", [{"role": "user", "content": "a key please"}], True, {})
    chunks: AsyncIterator[ChatChunk] = await rt.chat(ChatCall(RequestContext(headers={}), req))
    shown: list[str] = []
    with pytest.raises(BadRequestError) as info:
        async for chunk in chunks:
            shown.append(chunk.text)
    assert info.value.code == "output_secret_detected"
    assert "sk-proj" not in "".join(shown)
