"""Event-loop lag: a blocked loop shows up as lag, an idle one does not, and /metrics has it."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from opsgate.telemetry.loop_lag import LoopLagMonitor
from tests.api.test_openai_compat import oa
from tests.conftest import GatewayFactory
from tests.fixtures.upstream import FakeUpstream


async def test_a_blocked_loop_is_seen_as_lag() -> None:
    seen: list[float] = []
    monitor = LoopLagMonitor(seen.append, interval=0.02)
    monitor.start()
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop runs nothing else for 300 ms
        await asyncio.sleep(0.1)
    finally:
        await monitor.aclose()
    assert seen and min(seen) >= 0.0
    assert max(seen) >= 0.25, seen  # the timer due during the block woke at least 280 ms late


async def test_it_stops_cleanly_and_rejects_a_bad_interval() -> None:
    monitor = LoopLagMonitor(lambda _: None, interval=0.01)
    monitor.start()
    monitor.start()  # a second start is a no-op
    await monitor.aclose()
    await monitor.aclose()
    with pytest.raises(ValueError, match="positive"):
        LoopLagMonitor(lambda _: None, interval=0)


@pytest.mark.integration
def test_the_gateway_exports_loop_lag(
    gateway: GatewayFactory, upstreams: dict[str, FakeUpstream]
) -> None:
    gw = gateway({"models": [{"name": "m", "deployments": [oa("a", upstreams["alpha"])]}]})
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(f"{gw.base}/metrics", timeout=10).text
        count = next(
            (
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("opsgate_event_loop_lag_seconds_count")
            ),
            0.0,
        )
        if count > 0:
            break
        assert time.monotonic() < deadline, "no loop-lag sample in 10 s"
        time.sleep(0.1)
