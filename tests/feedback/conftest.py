"""Feedback fixtures: a migrated database per test (SQLite file and the real PostgreSQL), and a
real gateway with declared metrics, a master key and two seeded teams, driven over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opsgate.feedback import SqlScoreStore
from opsgate.feedback.scores_sqlite import SqliteScoreStore
from opsgate.feedback.scores_sqlite import score_store as store_for
from opsgate.store import dispose_engine, make_engine
from opsgate.telemetry.otel import create_tracer
from tests.access.conftest import database_url  # noqa: F401 (fixture)
from tests.access.helpers import MASTER, MSG, Client, World, config_data, seed
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.upstream import FakeUpstream
from tests.store.conftest import Backend, backend, empty_backend  # noqa: F401 (fixtures)

METRICS = {
    "thumbs": {"type": "boolean", "optimize": "max"},
    "rating": {"type": "float", "min": 1, "max": 5},
    "resolved": {"type": "boolean", "level": "session"},
    "issue": {"type": "category", "values": ["wrong", "unsafe", "off_topic", "too_long"]},
    "note": {"type": "comment"},
}


@pytest.fixture
async def score_store(backend: Backend) -> AsyncIterator[SqlScoreStore]:  # noqa: F811
    """The gateway's store for the backend: SQLite writes on a thread of their own."""
    engine = make_engine(backend.url)
    store = store_for(engine)
    try:
        yield store
    finally:
        if isinstance(store, SqliteScoreStore):
            await store.aclose()
        await dispose_engine(engine)


@dataclass
class Answer:
    trace_id: str
    token: str | None


@dataclass
class Fb:
    """One gateway with feedback on: the master key's client, the seeded world, the spans."""

    admin: Client
    world: World
    server: GatewayServer
    spans: InMemorySpanExporter

    def key(self, role: str, team: str) -> str:
        return self.world.keys[f"{role}:{team}"]

    def chat(
        self, key: str | None = None, *, session: str | None = None, user: str | None = None
    ) -> Answer:
        """One answer through the official SDK; its trace id and feedback token."""
        client = openai.OpenAI(base_url=self.server.url, api_key=key or MASTER, max_retries=0)
        headers = {"x-opsgate-session-id": session} if session else {}
        extra = {"user": user} if user else {}
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MSG,
            extra_headers=headers,
            **extra,  # type: ignore[arg-type]
        )
        raw.parse()
        client.close()
        return Answer(
            raw.headers["x-opsgate-trace-id"], raw.headers.get("x-opsgate-feedback-token")
        )

    def post(
        self,
        body: Any,
        *,
        key: str | None = "",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        headers = dict(headers or {})
        if token:
            headers["x-opsgate-feedback-token"] = token
        use = MASTER if key == "" else key
        if use and not token:
            headers["authorization"] = f"Bearer {use}"
        return httpx.post(
            f"{self.server.base}/v1/feedback", json=body, headers=headers, timeout=30, **kw
        )

    def trace(self, trace_id: str) -> dict[str, Any]:
        """`GET /admin/v1/traces/{id}` once the trace writer has stored it (10 s at most)."""
        deadline = time.monotonic() + 10
        while True:
            resp = self.admin.call("GET", f"/admin/v1/traces/{trace_id}")
            if resp.status_code == 200 or time.monotonic() > deadline:
                assert resp.status_code == 200, resp.text
                data: dict[str, Any] = resp.json()
                return data
            time.sleep(0.05)

    def scores(self, key: str | None = None, **params: str) -> list[dict[str, Any]]:
        resp = self.admin.as_(key or MASTER).call(
            "GET", "/admin/v1/feedback", params={"limit": "1000", **params}
        )
        assert resp.status_code == 200, resp.text
        data: list[dict[str, Any]] = resp.json()["data"]
        return data


FbStarter = Callable[..., Fb]


@pytest.fixture
def feedback_gateway(tmp_path: Path, upstreams: dict[str, FakeUpstream]) -> Iterator[FbStarter]:
    """`feedback_gateway(db_url, **feedback)` → an `Fb` on a fresh gateway (stopped after)."""
    started: list[GatewayServer] = []

    def start(db_url: str, *, traces: dict[str, Any] | None = None, **feedback: Any) -> Fb:
        data = config_data(
            upstreams["alpha"],
            journal_path=str(tmp_path / f"j{len(started)}.jsonl"),
            **(traces or {}),
        )
        data["feedback"] = {
            "metrics": METRICS,
            "trace_wait": 0.3,
            "flush_interval": 0.05,
            **feedback,
        }
        env = {"OPSGATE_DATABASE_URL": db_url, "OPSGATE_MASTER_KEY": MASTER}
        spans = InMemorySpanExporter()
        server = GatewayServer(make_config(data, env), tracer=create_tracer(exporter=spans))
        server.start()
        started.append(server)
        admin = Client(server.base, MASTER, server)
        return Fb(admin, seed(admin), server, spans)

    yield start
    for server in started:
        server.stop()
