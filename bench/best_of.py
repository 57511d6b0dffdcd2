"""`python -m bench best-of`: best-of-n re-ranking on an upstream that gets JSON wrong 40% of
the time, through the real gateway (`opsgate serve`), against the same upstream called directly.

The fake upstream (`python -m bench.best_of --upstream`, a subprocess) answers every chat with
valid JSON 60% of the time and with broken JSON (cut short, or prose around it) 40% of the time,
after a latency drawn from a log-normal (median `LATENCY_MEDIAN_S`, sigma `LATENCY_SIGMA`),
so the wait for the slowest of n candidates shows. The gateway's model has
`best_of_n: {scorer: json}`; each run sends `REQUESTS` requests at concurrency `CONCURRENCY` with
`x-opsgate-best-of: n`, in interleaved rounds so every n sees the same machine load. Per n: the
valid-JSON rate of the answers the client got (Wilson 95% interval), latency p50/p95, upstream
calls and cost per request (the gateway's `x-opsgate-cost-usd`), and for streams the time to the
first content byte, which waits for the whole selection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.procs import VENV_BIN, Server, clean_env, free_port, serve
from bench.report import Grid
from bench.stats import median, percentile

Progress = Callable[[str], None]
INVALID_SHARE = 0.4
LATENCY_MEDIAN_S = 0.12
LATENCY_SIGMA = 0.35
REQUESTS = 240
ROUNDS = 4
CONCURRENCY = 4
NS = (1, 3, 5)
PRICE = "{input: 0.15, output: 0.6}"  # USD per 1M tokens (gpt-4o-mini's list price)
VALID = '{"city": "Paris", "country": "France", "population": 2102650}'
INVALID = (
    '{"city": "Paris", "country": "France", "population": 21026',
    'Here is the JSON you asked for: {"city": "Paris", "country": "France"}',
    "{city: 'Paris', country: 'France'}",
)


# -- the fake upstream (a subprocess) ------------------------------------------------------


def _completion(text: str) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fake",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 24, "completion_tokens": 18, "total_tokens": 42},
    }
    return json.dumps(body).encode()


def _events(text: str) -> bytes:
    """The answer as one SSE stream (role, content, finish with usage, [DONE])."""
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "fake"}
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": text}, None),
        ({}, "stop"),
    ]
    out = []
    for delta, finish in deltas:
        event: dict[str, Any] = {
            **head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if finish is not None:
            event["usage"] = {"prompt_tokens": 24, "completion_tokens": 18, "total_tokens": 42}
        out.append(b"data: " + json.dumps(event).encode() + b"\n\n")
    return b"".join(out) + b"data: [DONE]\n\n"


def upstream_main(port: int, seed: int) -> None:
    from aiohttp import web

    rng = random.Random(seed)

    async def chat(request: web.Request) -> web.Response:
        stream = bool((await request.json()).get("stream"))
        valid = rng.random() >= INVALID_SHARE
        delay = LATENCY_MEDIAN_S * math.exp(rng.gauss(0.0, LATENCY_SIGMA))
        await asyncio.sleep(delay)
        text = VALID if valid else rng.choice(INVALID)
        if stream:
            return web.Response(body=_events(text), content_type="text/event-stream")
        return web.Response(body=_completion(text), content_type="application/json")

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextlib.contextmanager
def _upstream(seed: int) -> Iterator[Server]:
    import sys

    port = free_port()
    argv = [sys.executable, "-m", "bench.best_of", "--upstream", "--port", str(port)]
    argv += ["--seed", str(seed)]
    with serve("best-of upstream", argv, port, "/health") as upstream:
        yield upstream


@contextlib.contextmanager
def _gateway(upstream: Server) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="bench-best-of-") as tmp:
        config = Path(tmp) / "opsgate.yaml"
        config.write_text(
            "models:\n"
            "  - name: extract\n"
            "    deployments:\n"
            f"      - {{provider: openai, base_url: {upstream.url}/v1, model: fake, "
            f"api_key: x, price: {PRICE}}}\n"
            "    best_of_n: {n: 1, max_n: 8, scorer: json}\n"
            "cache: {enabled: false}\n"
            f"settings: {{database_url: 'sqlite:///{tmp}/opsgate.db'}}\n"
        )
        port = free_port()
        argv = [str(VENV_BIN / "opsgate"), "serve", "--config", str(config), "--port", str(port)]
        argv += ["--log-level", "warning"]
        env = clean_env({"OPSGATE_CONFIG": str(config)})
        with serve("gateway (best-of)", argv, port, "/healthz", env=env, cwd=Path(tmp)) as gw:
            yield gw


# -- the load --------------------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    label: str
    n: int
    direct: bool = False
    stream: bool = False
    valid: int = 0
    answered: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _body(target: Target) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "fake" if target.direct else "extract",
        "messages": [{"role": "user", "content": "Paris as JSON: city, country, population"}],
    }
    if target.stream:
        body["stream"] = True
    return body


async def _one(client: httpx.AsyncClient, url: str, target: Target) -> None:
    headers = {} if target.direct else {"x-opsgate-best-of": str(target.n)}
    t0 = time.perf_counter()
    if target.stream:
        text, first = [], None
        async with client.stream("POST", url, json=_body(target), headers=headers) as resp:
            if resp.status_code != 200:
                target.errors += 1
                return
            cost = resp.headers.get("x-opsgate-cost-usd")
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                for choice in event.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        first = first if first is not None else time.perf_counter() - t0
                        text.append(piece)
        content = "".join(text)
        if first is not None:
            target.first_bytes.append(first)
    else:
        resp = await client.post(url, json=_body(target), headers=headers)
        if resp.status_code != 200:
            target.errors += 1
            return
        cost = resp.headers.get("x-opsgate-cost-usd")
        content = resp.json()["choices"][0]["message"]["content"] or ""
    target.latencies.append(time.perf_counter() - t0)
    target.answered += 1
    target.valid += _is_json(content)
    if cost is not None:
        target.costs.append(float(cost))


async def _round(client: httpx.AsyncClient, url: str, target: Target, count: int) -> None:
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            queue.pop()
            await _one(client, url, target)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _drive(gateway_url: str, direct_url: str, targets: list[Target]) -> None:
    per_round = max(1, REQUESTS // ROUNDS)
    async with httpx.AsyncClient(timeout=60) as client:
        for t in targets:  # warm-up: connections, the gateway's first-request work
            warm = Target("warm", t.n, direct=t.direct, stream=t.stream)
            await _one(client, direct_url if t.direct else gateway_url, warm)
        for _ in range(ROUNDS):
            for t in targets:
                url = direct_url if t.direct else gateway_url
                await _round(client, url, t, per_round)


@dataclass(slots=True)
class BestOfRun:
    targets: list[Target]
    seconds: float


def run_best_of(progress: Progress) -> BestOfRun:
    started = time.monotonic()
    targets = [Target("direct upstream (floor)", 1, direct=True)]
    targets += [Target(f"gateway, n={n}", n) for n in NS]
    targets += [Target("gateway stream, n=1", 1, stream=True)]
    targets += [Target("gateway stream, n=3", 3, stream=True)]
    with _upstream(seed=17) as upstream, _gateway(upstream) as gw:
        progress(f"best-of: {REQUESTS} requests per target at c={CONCURRENCY}, {ROUNDS} rounds")
        path = "/v1/chat/completions"
        asyncio.run(_drive(gw.url + path, upstream.url + path, targets))
    return BestOfRun(targets, time.monotonic() - started)


# -- the report ------------------------------------------------------------------------------


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _ms(values: list[float], pct: float | None = None) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    value = median(ordered) if pct is None else percentile(ordered, pct)
    return f"{value * 1000:.0f}"


def best_of_grids(run: BestOfRun) -> list[Grid]:
    base = next(t for t in run.targets if not t.direct and not t.stream and t.n == 1)
    base_p50 = median(sorted(base.latencies)) if base.latencies else 0.0
    base_cost = median(sorted(base.costs)) if base.costs else 0.0
    grid = Grid(
        "Best-of-n with a JSON scorer, upstream invalid 40% of the time",
        (
            "target",
            "answers",
            "valid JSON",
            "95% CI",
            "p50 ms",
            "p95 ms",
            "p50 vs n=1",
            "USD per 1M requests",
            "cost vs n=1",
            "first byte p50 ms",
        ),
    )
    for t in run.targets:
        low, high = _wilson(t.valid, t.answered)
        p50 = median(sorted(t.latencies)) if t.latencies else 0.0
        cost = median(sorted(t.costs)) if t.costs else None
        grid.rows.append(
            (
                t.label,
                f"{t.answered}" + (f" ({t.errors} errors)" if t.errors else ""),
                f"{t.valid / t.answered:.1%}" if t.answered else "-",
                f"{low:.1%} .. {high:.1%}",
                _ms(t.latencies),
                _ms(t.latencies, 95),
                f"{p50 / base_p50:.2f}x" if base_p50 and not t.direct else "-",
                f"${cost * 1e6:.2f}" if cost is not None else "-",
                f"{cost / base_cost:.2f}x" if cost is not None and base_cost else "-",
                _ms(t.first_bytes) if t.stream else "-",
            )
        )
    expected = ", ".join(f"n={n}: {1 - INVALID_SHARE**n:.1%}" for n in NS)
    grid.notes.append(
        f"expected valid rate if candidates are independent (1 - 0.4^n): {expected}; "
        f"upstream latency log-normal, median {LATENCY_MEDIAN_S * 1000:.0f} ms, "
        f"sigma {LATENCY_SIGMA}; cost per request is the gateway's x-opsgate-cost-usd "
        "(all candidates together); run took "
        f"{run.seconds:.0f} s"
    )
    return [grid]


def best_of_markdown(run: BestOfRun, note: str) -> str:
    grids = best_of_grids(run)
    method = (
        "Method: one `opsgate serve` (uvicorn, traces on, cache off) in front of a fake upstream "
        f"that returns invalid JSON {INVALID_SHARE:.0%} of the time after a log-normal latency "
        f"(median {LATENCY_MEDIAN_S * 1000:.0f} ms); {REQUESTS} requests per target at "
        f"c={CONCURRENCY} in {ROUNDS} interleaved rounds; the model has "
        "`best_of_n: {scorer: json}` and each request asks `x-opsgate-best-of: n`. "
        "`python -m bench best-of`."
    )
    parts = ["## Best-of-n re-ranking (`python -m bench best-of`)", "", note, "", method, ""]
    for g in grids:
        parts += [f"**{g.title}**", "", g.markdown(), "", *g.notes, ""]
    return "\n".join(parts)


def main_best_of(args: Any, note: str, console: Any, progress: Progress) -> None:
    from bench.docs import update_section

    run = run_best_of(progress)
    for grid in best_of_grids(run):
        grid.rich(console)
    if not args.no_docs:
        update_section("best-of", best_of_markdown(run, note))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the best-of bench's fake upstream")
    parser.add_argument("--upstream", action="store_true", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=17)
    options = parser.parse_args()
    upstream_main(options.port, options.seed)
