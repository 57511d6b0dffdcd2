import random
from decimal import Decimal

from opsgate.config import DeploymentConfig, Price
from opsgate.providers.simulator import SimulatorProvider
from opsgate.routing.deployment import Deployment
from opsgate.routing.health import Circuit, Health, RateWindow
from opsgate.routing.strategies import least_busy, least_latency, lowest_cost, weighted


def dep(name: str, weight: float = 1.0, price: tuple[str, str] | None = None) -> Deployment:
    cost = Price(input=Decimal(price[0]), output=Decimal(price[1])) if price else None
    cfg = DeploymentConfig(provider="simulator", model=name, weight=weight, price=cost)
    health = Health(Circuit(5, 30), RateWindow(None, None))
    return Deployment(name, "g", cfg, SimulatorProvider(cfg, None), health, cost)


def test_weighted_follows_weights() -> None:
    a, b = dep("a", 9), dep("b", 1)
    rng = random.Random(1)
    picks = [weighted([a, b], False, rng).id for _ in range(2000)]
    assert 0.85 < picks.count("a") / len(picks) < 0.95


def test_least_latency_measures_unknown_first_then_prefers_fastest() -> None:
    a, b = dep("a"), dep("b")
    a.health.latency = 0.2
    assert least_latency([a, b], False, random.Random(0)).id == "b"
    b.health.latency = 0.5
    assert least_latency([a, b], False, random.Random(0)).id == "a"
    b.health.ttft = 0.05
    a.health.ttft = 0.1
    assert least_latency([a, b], True, random.Random(0)).id == "b", "streams compare TTFT"


def test_least_busy_prefers_fewest_in_flight() -> None:
    a, b, c = dep("a"), dep("b"), dep("c")
    a.health.in_flight, b.health.in_flight, c.health.in_flight = 3, 1, 2
    assert least_busy([a, b, c], False, random.Random(0)).id == "b"


def test_lowest_cost_prefers_cheapest_and_treats_unpriced_as_free() -> None:
    a, b = dep("a", price=("2.5", "10")), dep("b", price=("0.15", "0.6"))
    assert lowest_cost([a, b], False, random.Random(0)).id == "b"
    local = dep("local")
    assert lowest_cost([a, b, local], False, random.Random(0)).id == "local"
