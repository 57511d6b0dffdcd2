"""The alert channel against a real loopback webhook receiver that checks the HMAC signature and
fails the first attempts: retries with backoff, both body formats, and budget alerts end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from aiohttp import web

from opsgate.access.budgets.memory import MemoryBudgetLedger
from opsgate.access.budgets.model import BudgetScope
from opsgate.access.limits.model import ScopeRef
from opsgate.access.principal import BudgetPolicy
from opsgate.alerts import (
    SIGNATURE_HEADER,
    Alert,
    AlertService,
    MemoryAlertEventStore,
    RetryPolicy,
    WebhookSink,
    verify,
)

SECRET = "s3cret"
FAST = RetryPolicy(attempts=4, base_s=0.01, max_s=0.05)


class Receiver:
    """A webhook endpoint: 503 for the first `fail_first` deliveries, 401 on a bad signature."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.received: list[Any] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts += 1
        if not verify(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            return web.Response(status=401, text="bad signature")
        if self.attempts <= self.fail_first:
            return web.Response(status=503, text="try later")
        self.received.append(orjson.loads(body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(fail_first=2)
    await r.start()
    yield r
    await r.stop()


async def run(channel: AlertService, *alerts: Alert) -> None:
    channel.start()
    for alert in alerts:
        assert channel.emit(alert)
    await channel.drain()
    await channel.aclose()


def alert(kind: str = "budget.threshold", **labels: str) -> Alert:
    return Alert(kind=kind, message="Budget of key k1 is 80% spent", labels=labels)


async def test_signed_json_is_retried_until_delivered(receiver: Receiver) -> None:
    store = MemoryAlertEventStore()
    sink = WebhookSink(receiver.url, secret=SECRET)
    sent = alert(scope="key", id="k1")
    await run(AlertService([sink], store, retry=FAST), sent)
    await sink.aclose()
    assert receiver.attempts == 3 and receiver.received == [sent.to_json()]
    [event] = await store.list_events()
    assert (event.status, event.attempts, event.last_error) == ("delivered", 3, None)


async def test_slack_compatible_body(receiver: Receiver) -> None:
    receiver.fail_first = 0
    sink = WebhookSink(receiver.url, secret=SECRET, format="slack")
    await run(AlertService([sink], retry=FAST), alert())
    await sink.aclose()
    assert receiver.received == [
        {"text": ":warning: *budget.threshold* Budget of key k1 is 80% spent"}
    ]


async def test_a_bad_signature_is_not_retried(receiver: Receiver) -> None:
    store = MemoryAlertEventStore()
    sink = WebhookSink(receiver.url, secret="wrong")
    channel = AlertService([sink], store, retry=FAST)
    await run(channel, alert())
    await sink.aclose()
    [event] = await store.list_events()
    assert receiver.attempts == 1 and event.status == "failed"
    assert event.last_error == f"webhook:{receiver.url}: HTTP 401"
    assert channel.stats.failed == 1


async def test_an_unreachable_webhook_gives_up_after_the_retries() -> None:
    store = MemoryAlertEventStore()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sink = WebhookSink("http://127.0.0.1:9/hook", secret=SECRET, timeout=2)
    retry = RetryPolicy(attempts=5, base_s=1, max_s=4)
    await run(AlertService([sink], store, retry=retry, sleep=sleep), alert())
    await sink.aclose()
    [event] = await store.list_events()
    assert event.status == "failed" and event.attempts == 5
    assert len(slept) == 4  # exponential (1, 2, 4, then capped at 4), jittered in [cap/2, cap]
    for seconds, cap in zip(slept, [1, 2, 4, 4], strict=True):
        assert cap / 2 <= seconds <= cap


async def test_emit_never_blocks_and_counts_what_it_drops() -> None:
    channel = AlertService(queue_size=2)
    assert channel.emit(alert()) and channel.emit(alert())
    assert not channel.emit(alert())  # no worker yet, queue full: dropped, not blocked
    assert (channel.stats.emitted, channel.stats.dropped) == (2, 1)
    store = MemoryAlertEventStore()
    channel.store = store
    channel.start()
    await channel.drain()
    await channel.aclose()
    assert [e.status for e in await store.list_events()] == ["no_sink", "no_sink"]


async def test_budget_thresholds_reach_the_webhook(receiver: Receiver) -> None:
    receiver.fail_first = 0
    store = MemoryAlertEventStore()
    sink = WebhookSink(receiver.url, secret=SECRET)
    channel = AlertService([sink], store, retry=FAST)
    channel.start()
    ledger = MemoryBudgetLedger(on_alert=channel.emit)
    scope = BudgetScope(ScopeRef("team", "t1"), BudgetPolicy(max_usd=Decimal("0.001")))
    for _ in range(3):
        await ledger.settle(await ledger.reserve([scope], 300), 300)
    await asyncio.sleep(0)
    await channel.drain()
    await channel.aclose()
    await sink.aclose()
    got = [(a["kind"], a["data"]["threshold"], a["labels"]["id"]) for a in receiver.received]
    assert got == [("budget.threshold", 0.5, "t1"), ("budget.threshold", 0.8, "t1")]
    assert [e.status for e in await store.list_events(kind="budget.*")] == ["delivered"] * 2
