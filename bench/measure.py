"""Interleaved rounds: every target gets a warm-up, then round k of each target runs before
round k+1 of any, so drift on a shared machine hits all targets alike. Figures are medians."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.loadgen import LoadResult, run_load
from bench.procs import group_cpu_s
from bench.stats import median


@dataclass(frozen=True, slots=True)
class Settings:
    rounds: int = 3
    seconds: float = 2.0
    warmup: float = 1.0
    load_client: str | None = None
    """None: wrk when installed; "aiohttp"/"httpx": the `bench.client` process."""

    @property
    def per_target_s(self) -> float:
        return self.warmup + self.rounds * self.seconds


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    client: str | None = None
    """Overrides `Settings.load_client` for this target (the client benchmark)."""
    headers: dict[str, str] | None = None
    """Sent with every request (wrk only), e.g. a key."""
    pid: int | None = None
    """The server's process, leader of its process group: the group's CPU time per request
    (workers included) is measured too (`Summary.cpu_us`)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One target's rounds; each figure is the median over rounds."""

    rounds: tuple[LoadResult, ...]
    cpu_per_request: tuple[float, ...] = ()
    """Per round: the server's CPU seconds (user + system, every thread and worker of its process
    group) over the requests it served. Other load on the machine hardly moves it, unlike req/s."""

    @property
    def cpu_us(self) -> float | None:
        return median(list(self.cpu_per_request)) * 1e6 if self.cpu_per_request else None

    @property
    def rps(self) -> float:
        return median([r.rps for r in self.rounds])

    @property
    def p50_ms(self) -> float:
        return median([r.p50_ms for r in self.rounds])

    @property
    def p99_ms(self) -> float:
        return median([r.p99_ms for r in self.rounds])

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)


Progress = Callable[[str], None]


def measure(
    targets: Sequence[Target],
    body: bytes,
    concurrency: int,
    settings: Settings,
    progress: Progress | None = None,
) -> dict[str, Summary]:
    def load(target: Target, seconds: float, warmup: float = 0.0) -> LoadResult:
        client = target.client or settings.load_client
        return run_load(
            target.url,
            body,
            concurrency,
            seconds,
            warmup=warmup,
            client=client,
            headers=target.headers,
        )

    for target in targets:
        if progress:
            progress(f"warm-up {target.name} c={concurrency}")
        load(target, settings.warmup)
    results: dict[str, list[LoadResult]] = {t.name: [] for t in targets}
    cpu: dict[str, list[float]] = {t.name: [] for t in targets}
    for k in range(settings.rounds):
        for target in targets:
            if progress:
                progress(f"round {k + 1}/{settings.rounds} {target.name} c={concurrency}")
            before = group_cpu_s(target.pid) if target.pid is not None else 0.0
            got = load(target, settings.seconds)
            results[target.name].append(got)
            if target.pid is not None and got.requests:
                cpu[target.name].append((group_cpu_s(target.pid) - before) / got.requests)
    return {name: Summary(tuple(rounds), tuple(cpu[name])) for name, rounds in results.items()}
