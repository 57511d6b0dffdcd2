"""The gateway benchmark: direct to the fake upstream (the floor), a bare Python forwarder,
and the gateway, all against the same upstream in one run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.measure import Progress, Settings, Summary, Target, measure
from bench.servers import request_body, stack

ADDED_P50_TARGET_MS = 1.0
THROUGHPUT_TARGET_RATIO = 1 / 3


@dataclass(frozen=True, slots=True)
class Scenario:
    concurrency: int
    stream: bool = False

    @property
    def label(self) -> str:
        return "SSE" if self.stream else "JSON"


DEFAULT_SCENARIOS = (Scenario(1), Scenario(32), Scenario(1, stream=True), Scenario(32, stream=True))


@dataclass(frozen=True, slots=True)
class Comparison:
    scenario: Scenario
    direct: Summary
    gateway: Summary
    bare: Summary | None = None
    """The bare Python forwarder (`bench.bareproxy`), when measured."""

    @property
    def ratio(self) -> float:
        """Gateway req/s as a fraction of direct req/s."""
        return self.gateway.rps / self.direct.rps if self.direct.rps else 0.0

    @property
    def added_p50_ms(self) -> float:
        return self.gateway.p50_ms - self.direct.p50_ms

    @property
    def bare_ratio(self) -> float | None:
        """Gateway req/s as a fraction of the bare forwarder's."""
        if self.bare is None or not self.bare.rps:
            return None
        return self.gateway.rps / self.bare.rps


@dataclass(frozen=True, slots=True)
class GatewayRun:
    server: str
    settings: Settings
    comparisons: tuple[Comparison, ...]

    def find(self, concurrency: int, stream: bool = False) -> Comparison | None:
        wanted = Scenario(concurrency, stream)
        return next((c for c in self.comparisons if c.scenario == wanted), None)

    def verdicts(self) -> list[tuple[str, str, bool]]:
        """(target, measured, met) for the two issue targets."""
        out: list[tuple[str, str, bool]] = []
        c1, c32 = self.find(1), self.find(32)
        if c1:
            out.append(
                (
                    f"added p50 at c=1 < {ADDED_P50_TARGET_MS:g} ms",
                    f"{c1.added_p50_ms:+.3f} ms",
                    c1.added_p50_ms < ADDED_P50_TARGET_MS,
                )
            )
        if c32:
            out.append(
                (
                    f"gateway/direct req/s at c=32 >= {THROUGHPUT_TARGET_RATIO:.2f}",
                    f"{c32.ratio:.2f}",
                    c32.ratio >= THROUGHPUT_TARGET_RATIO,
                )
            )
        return out


def run_gateway(
    settings: Settings,
    server: str = "uvicorn",
    scenarios: Sequence[Scenario] = DEFAULT_SCENARIOS,
    progress: Progress | None = None,
    with_bare: bool = True,
) -> GatewayRun:
    comparisons: list[Comparison] = []
    with stack(server, with_bare=with_bare) as servers:
        targets = [Target("direct", servers.direct_url), Target("gateway", servers.gateway_url)]
        if servers.bare_url:
            targets.insert(1, Target("bare", servers.bare_url))
        for scenario in scenarios:
            body = request_body(stream=scenario.stream)
            got = measure(targets, body, scenario.concurrency, settings, progress)
            comparisons.append(Comparison(scenario, got["direct"], got["gateway"], got.get("bare")))
    return GatewayRun(server, settings, tuple(comparisons))
