"""Interleaved rounds: every target gets a warm-up, then round k of each target runs before
round k+1 of any, so drift on a shared machine hits all targets alike. Figures are medians."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import LoadResult, run_load
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
    """The server's process: its CPU time per request is measured too (`Summary.cpu_us`)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """One target's rounds; each figure is the median over rounds."""

    rounds: tuple[LoadResult, ...]
    cpu_per_request: tuple[float, ...] = ()
    """Per round: the server process's CPU seconds (user + system, all its threads) over the
    requests it served. Other load on the machine hardly moves it, unlike req/s."""

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
            before = cpu_seconds(target.pid)
            got = load(target, settings.seconds)
            results[target.name].append(got)
            if before is not None and got.requests:
                after = cpu_seconds(target.pid)
                if after is not None:
                    cpu[target.name].append((after - before) / got.requests)
    return {name: Summary(tuple(rounds), tuple(cpu[name])) for name, rounds in results.items()}


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process `pid` so far (Linux `/proc`), None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
