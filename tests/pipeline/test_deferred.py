"""`Deferred`: masking stored bodies after the answer, in a worker thread, losing nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from typing import Any

import httpx
import pytest

from opsgate.pipeline.deferred import Deferred
from tests.api.test_openai_compat import oa, one_model
from tests.conftest import GatewayFactory
from tests.fixtures.gateway import GatewayServer, make_config, wait_for_trace
from tests.fixtures.upstream import FakeUpstream, Reply


async def test_prepare_runs_in_a_thread_and_finish_on_the_loop() -> None:
    deferred, seen = Deferred(), {}
    loop_thread = threading.get_ident()

    def prepare() -> int:
        seen["prepare"] = threading.get_ident()
        return 41

    def finish(value: int) -> None:
        seen["finish"], seen["value"] = threading.get_ident(), value + 1

    deferred.submit(prepare, finish)
    assert deferred.pending == 1
    await deferred.drain()
    assert seen["prepare"] != loop_thread and seen["finish"] == loop_thread
    assert seen["value"] == 42 and deferred.pending == 0


async def test_past_the_limit_a_job_runs_inline() -> None:
    deferred, done = Deferred(limit=0), []
    deferred.submit(lambda: "now", done.append)
    assert done == ["now"] and deferred.pending == 0


async def test_drain_waits_for_jobs_submitted_while_it_waits() -> None:
    deferred, done = Deferred(), []
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return "first"

    def chain(value: str) -> None:
        done.append(value)
        deferred.submit(lambda: "second", done.append)

    deferred.submit(slow, chain)
    draining = asyncio.create_task(deferred.drain())
    await asyncio.sleep(0.05)
    assert not draining.done()
    release.set()
    await draining
    assert done == ["first", "second"]


async def test_a_failing_job_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    deferred = Deferred()

    def broken() -> None:
        raise RuntimeError("boom")

    deferred.submit(broken, lambda _: None)
    await deferred.drain()
    assert "could not finish a trace" in caplog.text


# -- through a gateway: shutdown waits for the job; an erasure holds against it (tombstones) --

EMAILS = " ".join(f"write to person{i}@example.com today" for i in range(20_000))
"""~800k characters: masking them takes about half a second, longer than an erasure or a
shutdown, so a test that does not wait for the job sees it missing."""


def _masked_gateway(
    gateway: GatewayFactory, fake: FakeUpstream, **traces: Any
) -> tuple[GatewayServer, dict[str, Any]]:
    config = {
        **one_model(oa("a", fake)),
        "traces": {"flush_interval": 0.05, "store_bodies": "masked", **traces},
        "guard": {"max_scan_chars": 1_000_000},
    }
    return gateway(config), config


def _ask(gw: GatewayServer, **headers: str) -> httpx.Response:
    resp = httpx.post(
        f"{gw.url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": EMAILS}]},
        headers={"authorization": "Bearer unused", **headers},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return resp


@pytest.mark.integration
def test_shutdown_stores_a_trace_still_being_masked(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream], db_url: str
) -> None:
    fake = upstreams["alpha"]
    fake.script(Reply(text="noted"))
    gw, config = _masked_gateway(gateway, fake)
    trace_id = _ask(gw).headers["x-opsgate-trace-id"]
    gw.stop()  # at once: the masking job is still running in its thread
    path = db_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:  # the database, not the journal
        row = db.execute("SELECT request_body FROM traces WHERE trace_id = ?", (trace_id,))
        assert row.fetchone() is not None, "the trace did not reach the database at shutdown"
    with GatewayServer(make_config(config, {"OPSGATE_DATABASE_URL": db_url})) as again:
        record = wait_for_trace(again, trace_id, include_bodies="true")
    stored = record["request_body"]["data"]
    assert "person1@example.com" not in stored and "<EMAIL_1>" in stored


@pytest.mark.integration
def test_a_trace_masked_after_an_erasure_does_not_bring_the_user_back(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    fake = upstreams["alpha"]
    fake.script(Reply(text="noted"), Reply(text="noted"))
    gw, _ = _masked_gateway(gateway, fake)
    _ask(gw, **{"x-opsgate-end-user": "erin"})
    erased = httpx.delete(f"{gw.base}/admin/v1/end-users/erin", timeout=60)
    assert erased.status_code == 200, erased.text
    sentinel = _ask(gw, **{"x-opsgate-end-user": "other"}).headers["x-opsgate-trace-id"]
    wait_for_trace(gw, sentinel)
    deadline = time.monotonic() + 10
    while gw.gateway.deferred.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few flush intervals, for anything published late
    left = httpx.get(f"{gw.base}/admin/v1/traces", params={"end_user": "erin"}).json()
    assert left["data"] == [], "a trace masked after the erasure brought the user back"
