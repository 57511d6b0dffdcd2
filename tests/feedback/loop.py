"""The review and dataset tests' gateway: feedback on, bodies stored (encrypted), two seeded
teams; answers made through the official openai SDK with scripted upstream replies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.access.conftest import TEST_ENCRYPTION_KEY
from tests.access.helpers import MASTER, Client
from tests.feedback.conftest import Fb, FbStarter
from tests.fixtures._steps import Reply
from tests.fixtures.upstream import FakeUpstream


@dataclass
class Loop:
    fb: Fb
    upstream: FakeUpstream

    @property
    def base(self) -> str:
        return self.fb.server.base

    def key(self, role: str, team: str) -> str:
        return self.fb.key(role, team)

    def key_id(self, role: str, team: str) -> str:
        return self.fb.world.key_ids[f"{role}:{team}"]

    def as_(self, key: str | None = MASTER) -> Client:
        return self.fb.admin.as_(key)

    def ask(
        self,
        question: str,
        answer: str,
        *,
        key: str | None = None,
        user: str | None = None,
        model: str = "gpt-4o-mini",
        system: str | None = None,
    ) -> str:
        """One chat answer (the upstream says `answer`); its trace id."""
        self.upstream.script(Reply(text=answer))
        client = openai.OpenAI(base_url=self.fb.server.url, api_key=key or MASTER, max_retries=0)
        messages: list[Any] = [{"role": "user", "content": question}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        extra = {"user": user} if user else {}
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=messages,
            **extra,  # type: ignore[arg-type]
        )
        raw.parse()
        client.close()
        return raw.headers["x-opsgate-trace-id"]

    def score(
        self, trace_id: str, metric: str, value: Any, *, key: str | None = None, **kw: Any
    ) -> None:
        body = {"trace_id": trace_id, "metric": metric, "value": value, **kw}
        resp = self.fb.post(body, key=key or MASTER)
        assert resp.status_code == 200, resp.text

    def wait_traces(self, trace_ids: list[str]) -> None:
        """Until the trace writer stored them all (10 s at most)."""
        deadline = time.monotonic() + 10
        for trace_id in trace_ids:
            while True:
                resp = self.as_().call("GET", f"/admin/v1/traces/{trace_id}")
                if resp.status_code == 200:
                    break
                assert time.monotonic() < deadline, f"trace {trace_id} never stored"
                time.sleep(0.05)

    def wait_scores(self, count: int, **params: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 10
        while True:
            found = self.fb.scores(**params)
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"only {len(found)} of {count} scores"
            time.sleep(0.05)


def expect(resp: httpx.Response, status: int, code: str | None = None) -> Any:
    assert resp.status_code == status, resp.text
    if code is not None:
        assert resp.json()["error"]["code"] == code, resp.text
    return resp.json()


def start_loop(
    database_url: str,
    feedback_gateway: FbStarter,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
) -> Loop:
    monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)
    fb = feedback_gateway(database_url, traces={"store_bodies": "full"})
    return Loop(fb, upstreams["alpha"])


@pytest.fixture
def loop(
    database_url: str,
    feedback_gateway: FbStarter,
    upstreams: dict[str, FakeUpstream],
    monkeypatch: pytest.MonkeyPatch,
) -> Loop:
    """A `Loop` on SQLite and on PostgreSQL."""
    return start_loop(database_url, feedback_gateway, upstreams, monkeypatch)
