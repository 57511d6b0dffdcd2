"""A small async load client, run in its own process: the fallback when `wrk` is absent, and the
aiohttp-vs-httpx client benchmark.

`python -m bench.client --url URL --body-file F --concurrency 32 --seconds 2 [--client httpx]`
prints one JSON line: requests, errors, duration_us, p50_us, p99_us.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from bench.stats import percentile

Post = Callable[[], Awaitable[int]]
REQUEST_TIMEOUT = 10.0


async def _drive(post: Post, concurrency: int, warmup: float, seconds: float) -> dict[str, float]:
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status = await post()
                ok = status == 200
            except Exception:
                ok = False
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if ok:
                    latencies.append(t1 - t0)
                else:
                    errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "duration_us": seconds * 1e6,
        "p50_us": percentile(latencies, 50) * 1e6,
        "p99_us": percentile(latencies, 99) * 1e6,
    }


async def run_aiohttp(
    url: str, body: bytes, concurrency: int, warmup: float, seconds: float
) -> dict[str, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def post() -> int:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        return await _drive(post, concurrency, warmup, seconds)


async def run_httpx(
    url: str, body: bytes, concurrency: int, warmup: float, seconds: float
) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=REQUEST_TIMEOUT) as client:

        async def post() -> int:
            resp = await client.post(url, content=body, headers=headers)
            return resp.status_code

        return await _drive(post, concurrency, warmup, seconds)


CLIENTS = {"aiohttp": run_aiohttp, "httpx": run_httpx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.0)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="aiohttp")
    args = parser.parse_args()
    import uvloop

    runner = CLIENTS[args.client]
    body = args.body_file.read_bytes()
    result = uvloop.run(runner(args.url, body, args.concurrency, args.warmup, args.seconds))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
