"""The choices the gateway makes by measurement: ASGI server, upstream HTTP client, JSON."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

from bench.gateway import Scenario
from bench.jsonbench import JsonResult, run_json
from bench.measure import Progress, Settings, Summary, Target, measure
from bench.servers import ASGI_SERVERS, CHAT_PATH, fake_upstream, gateway, request_body

SERVER_SCENARIOS = (Scenario(1), Scenario(32), Scenario(32, stream=True))
CLIENTS = ("aiohttp", "httpx")
CLIENT_CONCURRENCY = 32
MIN_ROUNDS = 5
"""The server and client differences are small next to this machine's noise: more rounds."""


@dataclass(frozen=True, slots=True)
class ServerRow:
    scenario: Scenario
    by_server: dict[str, Summary]


@dataclass(frozen=True, slots=True)
class ChoicesRun:
    settings: Settings
    servers: tuple[ServerRow, ...]
    clients: dict[str, Summary]
    json: tuple[JsonResult, ...]


def run_servers(settings: Settings, progress: Progress | None = None) -> list[ServerRow]:
    """Both gateways run side by side on one upstream; their rounds interleave."""
    rows: list[ServerRow] = []
    with fake_upstream() as upstream, contextlib.ExitStack() as stack:
        targets = [
            Target(name, stack.enter_context(gateway(upstream, name)).url + CHAT_PATH)
            for name in ASGI_SERVERS
        ]
        for scenario in SERVER_SCENARIOS:
            body = request_body(stream=scenario.stream)
            got = measure(targets, body, scenario.concurrency, settings, progress)
            rows.append(ServerRow(scenario, got))
    return rows


def run_clients(settings: Settings, progress: Progress | None = None) -> dict[str, Summary]:
    """Each Python client drives the fake upstream directly, in its own process."""
    with fake_upstream() as upstream:
        url = upstream.url + CHAT_PATH
        targets = [Target(name, url, client=name) for name in CLIENTS]
        return measure(targets, request_body(), CLIENT_CONCURRENCY, settings, progress)


def run_choices(settings: Settings, progress: Progress | None = None) -> ChoicesRun:
    settings = dataclasses.replace(settings, rounds=max(settings.rounds, MIN_ROUNDS))
    json_results = tuple(run_json())
    servers = tuple(run_servers(settings, progress))
    clients = run_clients(settings, progress)
    return ChoicesRun(settings, servers, clients, json_results)
