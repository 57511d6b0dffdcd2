"""`python -m bench hotpath`: the gateway's request path against the direct upstream, the bare
Python forwarder, and itself with every feature a production key has (issue #22).

Targets, one run, interleaved rounds:

- `direct`: the fake upstream (the floor);
- `bare`: `bench.bareproxy`, one pooled aiohttp session and nothing else (the stack's ceiling);
- `gateway`: the gateway with tracing to SQLite and no key (the open laptop);
- `features`: the same with a master key, a virtual key carrying rate limits (rpm, tpm,
  max_parallel) and a budget, tracing to SQLite; every request authenticates, is admitted,
  settled and traced;
- `features x2`: that gateway with two worker processes (`opsgate serve --workers 2`, the
  kernel spreading connections over them); its CPU is its process group's (both workers).

Scenarios: c=1 JSON and SSE (added latency), c=32 with no upstream delay (throughput), and
c=64 with a 50 ms upstream (queueing: an upstream as fast as a small model's first token). For
each gateway the run also reads its CPU time per request (`/proc`) and, from `/metrics`, how
late its event loop ran timers during the scenario (`opsgate_event_loop_lag_seconds`): the
time every request waited before the gateway started on it.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bench.measure import Progress, Settings, Summary, Target, measure
from bench.procs import Server
from bench.report import Grid
from bench.servers import CHAT_PATH, bare_proxy, fake_upstream, gateway, request_body

MASTER = "sk-bench-master"


@dataclass(frozen=True, slots=True)
class Scenario:
    concurrency: int
    delay_ms: float = 0.0
    stream: bool = False

    @property
    def label(self) -> str:
        kind = "SSE" if self.stream else "JSON"
        delay = f", upstream {self.delay_ms:g} ms" if self.delay_ms else ""
        return f"{kind} c={self.concurrency}{delay}"


SCENARIOS = (
    Scenario(1),
    Scenario(1, stream=True),
    Scenario(32),
    Scenario(64, delay_ms=50),
)


@dataclass(frozen=True, slots=True)
class Lag:
    """Event-loop lag samples taken during one scenario (from the histogram's deltas)."""

    samples: int
    mean_ms: float
    over_5ms: float
    """Share of samples later than 5 ms."""


@dataclass(slots=True)
class Result:
    scenario: Scenario
    summaries: dict[str, Summary]
    lag: dict[str, Lag] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Gateways:
    direct: Server
    bare: Server
    gateway: Server
    features: Server
    features2: Server
    key: str
    key2: str


@contextlib.contextmanager
def _stack(delay_ms: float) -> Iterator[Gateways]:
    with contextlib.ExitStack() as running:
        upstream = running.enter_context(fake_upstream(delay_ms))
        bare = running.enter_context(bare_proxy(upstream))
        plain = running.enter_context(gateway(upstream, name="no key"))
        env = {"OPSGATE_MASTER_KEY": MASTER}
        full = running.enter_context(gateway(upstream, name="features", env_extra=env))
        two = running.enter_context(gateway(upstream, name="features x2", env_extra=env, workers=2))
        keys = _virtual_key(full), _virtual_key(two)
        time.sleep(1.5)  # the other worker learns the new key from the change feed (0.5 s)
        yield Gateways(upstream, bare, plain, full, two, *keys)


def _virtual_key(gw: Server) -> str:
    """A member key with rate limits and a budget that never refuse during the run."""
    body = {
        "alias": "bench",
        "limits": {"rpm": 10_000_000, "tpm": 1_000_000_000, "max_parallel": 10_000},
        "budget": {"max_usd": "1000000", "period": "monthly"},
    }
    req = urllib.request.Request(
        gw.url + "/admin/v1/keys",
        data=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
    )
    for attempt in range(10):  # a multi-worker gateway may still be starting its other worker
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                key: str = json.loads(resp.read())["key"]
            return key
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == 9:
                raise RuntimeError(f"{gw.name}: {exc.code} {exc.read()[:500]!r}") from exc
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _lag_buckets(gw: Server) -> dict[float, float]:
    """The loop-lag histogram's cumulative buckets (le -> count), plus `sum` under -1."""
    with urllib.request.urlopen(gw.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        bucket = re.match(r'opsgate_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if bucket:
            out[float(bucket.group(1))] = float(bucket.group(2))
        elif line.startswith("opsgate_event_loop_lag_seconds_sum "):
            out[-1.0] = float(line.split()[1])
    return out


def _lag_between(before: dict[float, float], after: dict[float, float]) -> Lag:
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    if total <= 0:
        return Lag(0, 0.0, 0.0)
    mean = (after.get(-1.0, 0.0) - before.get(-1.0, 0.0)) / total
    under = [le for le in after if 0 <= le <= 0.005]
    at_5ms = max(under) if under else None
    within = after[at_5ms] - before.get(at_5ms, 0.0) if at_5ms is not None else 0.0
    return Lag(int(total), mean * 1000, 1 - within / total)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_hotpath(
    settings: Settings,
    scenarios: Sequence[Scenario] = SCENARIOS,
    progress: Progress | None = None,
) -> list[Result]:
    results: list[Result] = []
    for delay in sorted({s.delay_ms for s in scenarios}):
        with _stack(delay) as gws:
            for scenario in (s for s in scenarios if s.delay_ms == delay):
                results.append(_one(gws, scenario, settings, progress))
    order = {s: i for i, s in enumerate(scenarios)}
    return sorted(results, key=lambda r: order[r.scenario])


def _one(
    gws: Gateways, scenario: Scenario, settings: Settings, progress: Progress | None
) -> Result:
    targets = [
        Target("direct", gws.direct.url + CHAT_PATH),
        Target("bare", gws.bare.url + CHAT_PATH, pid=gws.bare.pid),
        Target("gateway", gws.gateway.url + CHAT_PATH, pid=gws.gateway.pid),
        Target(
            "features",
            gws.features.url + CHAT_PATH,
            pid=gws.features.pid,
            headers={"Authorization": f"Bearer {gws.key}", "x-opsgate-end-user": "bench-user"},
        ),
        Target(
            "features x2",
            gws.features2.url + CHAT_PATH,
            pid=gws.features2.pid,
            headers={"Authorization": f"Bearer {gws.key2}", "x-opsgate-end-user": "bench-user"},
        ),
    ]
    watched = {"gateway": gws.gateway, "features": gws.features}
    before = {name: _lag_buckets(gw) for name, gw in watched.items()}
    got = measure(targets, request_body(stream=scenario.stream), scenario.concurrency, settings,
                  progress)  # fmt: skip
    result = Result(scenario, got)
    for name, gw in watched.items():
        result.lag[name] = _lag_between(before[name], _lag_buckets(gw))
        result.rss_mb[name] = _rss_mb(gw.pid)
    return result


def hotpath_grids(results: list[Result]) -> list[Grid]:
    main = Grid(
        "Hot path: direct, bare forwarder, gateway, gateway with key + limits + budget + traces",
        ("scenario", "target", "req/s", "vs direct", "vs bare", "p50 ms", "added p50",
         "p99 ms", "added p99", "CPU µs/req", "loop lag mean ms", "lag > 5 ms", "RSS MB"),
    )  # fmt: skip
    for r in results:
        direct, bare = r.summaries["direct"], r.summaries["bare"]
        for name in ("direct", "bare", "gateway", "features", "features x2"):
            s = r.summaries[name]
            lag = r.lag.get(name)
            main.rows.append(
                (
                    r.scenario.label,
                    name,
                    f"{s.rps:,.0f}",
                    f"{s.rps / direct.rps:.2f}" if direct.rps else "-",
                    f"{s.rps / bare.rps:.2f}" if bare.rps and name != "direct" else "",
                    f"{s.p50_ms:.2f}",
                    "" if name == "direct" else f"{s.p50_ms - direct.p50_ms:+.2f}",
                    f"{s.p99_ms:.2f}",
                    "" if name == "direct" else f"{s.p99_ms - direct.p99_ms:+.2f}",
                    "" if s.cpu_us is None else f"{s.cpu_us:,.0f}",
                    "" if lag is None else f"{lag.mean_ms:.2f}",
                    "" if lag is None else f"{lag.over_5ms:.0%}",
                    f"{r.rss_mb[name]:.0f}" if name in r.rss_mb else "",
                )
            )
    main.notes.extend(
        [
            "vs direct / vs bare: req/s over the direct upstream's / the bare forwarder's in the "
            "same scenario; added p50/p99: minus the direct upstream's.",
            "CPU µs/req: the server's CPU (its process group: all threads and workers) per request "
            "served, median of "
            "rounds. Loop lag: how late the gateway's event loop ran its 0.25 s timer during the "
            "scenario (mean, and the share of samples later than 5 ms).",
        ]
    )
    return [main, _targets(results)]


def _targets(results: list[Result]) -> Grid:
    grid = Grid("Issue #22 targets (the `features` gateway)", ("target", "measured", "met"))
    by = {(r.scenario.concurrency, r.scenario.delay_ms, r.scenario.stream): r for r in results}
    queue = by.get((64, 50.0, False))
    if queue:
        s, d = queue.summaries["features"], queue.summaries["direct"]
        ratio = s.rps / d.rps if d.rps else 0.0
        ok = ratio >= 0.97 and s.p50_ms - d.p50_ms <= 1 and s.p99_ms - d.p99_ms <= 10
        grid.rows.append(
            (
                "c=64, 50 ms upstream: >= 0.97 of direct, added p50 <= 1 ms, p99 <= 10 ms",
                f"{ratio:.2f}, {s.p50_ms - d.p50_ms:+.2f} ms, {s.p99_ms - d.p99_ms:+.2f} ms",
                "yes" if ok else "NO",
            )
        )
    thr = by.get((32, 0.0, False))
    if thr:
        s = thr.summaries["features"]
        ok = s.rps >= 3000 and s.p99_ms <= 30
        grid.rows.append(
            ("c=32: >= 3,000 req/s, p99 <= 30 ms", f"{s.rps:,.0f}, {s.p99_ms:.1f} ms",
             "yes" if ok else "NO")
        )  # fmt: skip
        two = thr.summaries["features x2"]
        scale = two.rps / s.rps if s.rps else 0.0
        grid.rows.append(
            ("2 workers >= 1.6x one worker at c=32 (0.8 N)", f"{scale:.2f}x",
             "yes" if scale >= 1.6 else "NO")
        )  # fmt: skip
        plain = thr.summaries["gateway"]
        cost = 1 - s.rps / plain.rps if plain.rps else 0.0
        grid.rows.append(
            ("features cost < 10% of req/s at c=32", f"{cost:.0%}", "yes" if cost < 0.1 else "NO")
        )
    for stream, limit in ((False, 0.3), (True, 0.5)):
        one = by.get((1, 0.0, stream))
        if one:
            added = one.summaries["features"].p50_ms - one.summaries["direct"].p50_ms
            grid.rows.append(
                (f"c=1 {'SSE' if stream else 'JSON'}: added p50 <= {limit} ms",
                 f"{added:+.3f} ms", "yes" if added <= limit else "NO")
            )  # fmt: skip
    rss = max((r.rss_mb.get("features", 0.0) for r in results), default=0.0)
    grid.rows.append(("RSS <= 150 MB per worker", f"{rss:.0f} MB", "yes" if rss <= 150 else "NO"))
    return grid
