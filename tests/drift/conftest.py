"""Drift fixtures: a real gateway with bodies kept (encrypted), drift sampling every request
with the hashing embedder, a master key, a loopback webhook for alerts, and the question sets
from ../shared/data as traffic."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from opsgate.store import dispose_engine, make_engine
from tests.access.conftest import TEST_ENCRYPTION_KEY, database_url  # noqa: F401 (fixture)
from tests.access.helpers import MASTER, Client, config_data
from tests.fixtures.gateway import GatewayServer, make_config
from tests.fixtures.needs import need
from tests.fixtures.upstream import FakeUpstream

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def questions(folder: str) -> list[str]:
    """Distinct `a` questions of a paraphrase set, in file order. One question per pair: a
    pair's `b` paraphrases its `a`, and two near-copies in one sample would make its rows
    dependent, which no two-sample test assumes."""
    path = DATA / folder / "dev.jsonl"
    need(path.exists(), f"{path} is missing")
    seen: dict[str, None] = {}
    for line in path.read_text().splitlines():
        seen.setdefault(json.loads(line)["a"], None)
    return list(seen)


class Webhook:
    """A loopback webhook receiver (a thread): the alerts it got."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait(self, kind: str, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for alert in self.received:
                if alert.get("kind") == kind:
                    return alert
            time.sleep(0.05)
        raise AssertionError(f"no {kind} alert within {within}s: {self.received}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class DriftGw:
    admin: Client
    server: GatewayServer
    url: str
    upstream: FakeUpstream
    webhook: Webhook
    sent: list[str] = field(default_factory=list)

    def chat(self, question: str, *, user: str | None = None) -> str:
        body: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": question}],
        }
        if user:
            body["user"] = user
        resp = self.admin.call("POST", "/v1/chat/completions", body)
        assert resp.status_code == 200, resp.text
        trace_id: str = resp.headers["x-opsgate-trace-id"]
        self.sent.append(trace_id)
        return trace_id

    def samples(self) -> int:
        return int(self.sql("SELECT count(*) FROM drift_samples")[0][0])

    def wait_samples(self, n: int, within: float = 30.0) -> None:
        """Until `n` samples are written (the sampler writes in the background)."""
        deadline = time.monotonic() + within
        while self.samples() < n:
            assert time.monotonic() < deadline, f"{self.samples()} of {n} samples written"
            time.sleep(0.1)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        async def go() -> list[Any]:
            engine = make_engine(self.url)
            try:
                async with engine.begin() as conn:
                    result = await conn.execute(text(statement), params)
                    return list(result.fetchall()) if result.returns_rows else []
            finally:
                await dispose_engine(engine)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop may run here (Playwright)
            return pool.submit(asyncio.run, go()).result()

    def backdate(self, seconds: float) -> None:
        """Move every sample and trace so far `seconds` into the past (the reference period),
        as if that traffic had come earlier."""
        self.sql("UPDATE drift_samples SET created_at = created_at - :s", s=seconds)
        self.sql("UPDATE traces SET started_at = started_at - :s", s=seconds)
        self.sql("UPDATE scores SET created_at = created_at - :s", s=seconds)


@pytest.fixture
def drift_gateway(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    upstreams: dict[str, FakeUpstream],
) -> Iterator[Any]:
    """`drift_gateway(db_url, **drift)` → a `DriftGw` (stopped after the test)."""
    started: list[tuple[GatewayServer, Webhook]] = []
    monkeypatch.setenv("OPSGATE_ENCRYPTION_KEYS", TEST_ENCRYPTION_KEY)

    def start(db_url: str, *, feedback: dict[str, Any] | None = None, **drift: Any) -> DriftGw:
        webhook = Webhook()
        data = config_data(
            upstreams["alpha"], store_bodies="full", journal_path=str(tmp_path / "j.jsonl")
        )
        data["drift"] = {
            "sample": 1.0,
            "embed_sample": 1.0,
            "embedder": {"type": "hashing", "dim": 256},
            "interval": 3600,
            **drift,
        }
        if feedback is not None:
            data["feedback"] = feedback
        data["alerts"] = {"webhooks": [{"url": webhook.url}], "retry_base": 0.05}
        env = {
            "OPSGATE_DATABASE_URL": db_url,
            "OPSGATE_MASTER_KEY": MASTER,
            "OPSGATE_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        }
        server = GatewayServer(make_config(data, env)).start()
        started.append((server, webhook))
        return DriftGw(
            Client(server.base, MASTER, server), server, db_url, upstreams["alpha"], webhook
        )

    yield start
    for server, webhook in started:
        server.stop()
        webhook.close()


def poll(fn: Any, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def get(client: Client, path: str, **params: str) -> Any:
    resp = client.call("GET", path, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


__all__ = ["DriftGw", "get", "httpx", "poll", "questions"]
