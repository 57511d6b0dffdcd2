"""Two gateway processes sharing the exact cache through the real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cache.helpers import REDIS_URL, one_model
from tests.fixtures.upstream import FakeUpstream

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BODY: dict[str, Any] = {"model": "m", "temperature": 0}

Replica = Callable[..., str]


@pytest.fixture
def replica(
    redis_prefix: str, upstreams: dict[str, FakeUpstream], tmp_path: Path
) -> Iterator[Replica]:
    """`replica(semantic=False)` starts one more gateway process on the shared Redis; returns
    its base URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(semantic: bool = False) -> str:
        cache: dict[str, Any] = {
            "exact": {"backend": "redis", "redis_url": REDIS_URL, "prefix": redis_prefix}
        }
        if semantic:
            cache["semantic"] = {"enabled": True, "shared": True, "threshold": 0.75}
        db = f"sqlite:///{tmp_path}/replica{len(procs)}.db"
        spec = {"config": one_model(upstreams["alpha"]), "cache": cache}
        spec["env"] = {"OPSGATE_DATABASE_URL": db}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cache.serve_cached", json.dumps(spec)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port.isdigit(), "the replica did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs:
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()


def ask(base: str, text: str, **extra: Any) -> httpx.Response:
    body = {**BODY, "messages": [{"role": "user", "content": text}], **extra}
    with httpx.Client(base_url=base, timeout=20) as http:
        resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp


def test_two_processes_share_entries_purges_and_erasure(
    replica: Replica, upstreams: dict[str, FakeUpstream]
) -> None:
    one, two = replica(), replica()
    fake = upstreams["alpha"]
    assert ask(one, "q1", user="alice").headers["x-opsgate-cache"] == "miss"
    assert ask(two, "q1").headers["x-opsgate-cache"] == "hit-exact"
    with (
        httpx.Client(base_url=two, timeout=20) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={**BODY, "messages": [{"role": "user", "content": "q2"}], "stream": True},
        ) as resp,
    ):
        assert resp.headers["x-opsgate-cache"] == "miss"
        assert b"[DONE]" in resp.read()
    assert ask(one, "q2").headers["x-opsgate-cache"] == "hit-exact", "a stream served JSON"
    assert len(fake.requests) == 2

    with httpx.Client(base_url=one, timeout=20) as admin:
        assert admin.get("/admin/v1/cache").json()["exact"] == {
            "backend": "redis",
            "entries": 2,
            "bytes": None,
        }
        erased = admin.post("/admin/v1/cache/erase", json={"end_user": "alice"})
        assert erased.json()["purged"]["exact"] == 1
    assert ask(two, "q1").headers["x-opsgate-cache"] == "miss", "erased for every replica"
    assert ask(two, "q2").headers["x-opsgate-cache"] == "hit-exact"
    with httpx.Client(base_url=two, timeout=20) as admin:
        purged = admin.post("/admin/v1/cache/purge", json={"model": "m"})
        assert purged.json()["purged"]["exact"] == 2
    assert ask(one, "q2").headers["x-opsgate-cache"] == "miss"


def test_two_processes_share_the_semantic_index(
    replica: Replica, upstreams: dict[str, FakeUpstream]
) -> None:
    one, two = replica(semantic=True), replica(semantic=True)
    assert ask(one, "How do I reset my password?", user="alice").headers["x-opsgate-cache"] == (
        "miss"
    )
    deadline = time.monotonic() + 10
    while True:  # the other replica follows the shared log within moments
        got = ask(two, "how do i reset my password", cache={"no-store": True})
        if got.headers["x-opsgate-cache"] == "hit-semantic" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert got.headers["x-opsgate-cache"] == "hit-semantic"
    assert got.json()["choices"][0]["message"]["content"] == "hello from alpha"

    with httpx.Client(base_url=one, timeout=20) as admin:
        erased = admin.post("/admin/v1/cache/erase", json={"end_user": "alice"}).json()
        assert erased["purged"] == {"exact": 1, "semantic": 1}
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=two, timeout=20) as admin:
        while admin.get("/admin/v1/cache").json()["semantic"]["entries"]:
            assert time.monotonic() < deadline, "the erasure reached the other replica"
            time.sleep(0.05)
    assert ask(two, "how do i reset my password").headers["x-opsgate-cache"] == "miss"
