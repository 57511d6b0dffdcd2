"""Runtime deployments and model groups (config phase two: providers built, ids resolved)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from opsgate.config.schema import DeploymentConfig, Price
from opsgate.providers.base import Provider
from opsgate.routing.health import Health


@dataclass(slots=True, eq=False)
class Deployment:
    id: str
    group: str
    config: DeploymentConfig
    provider: Provider
    health: Health
    price: Price | None = None
    """What a token costs here: the configured price, else the built-in list price."""

    @property
    def tags(self) -> list[str]:
        return self.config.tags

    @property
    def unit_price(self) -> Decimal | None:
        """A single figure to compare costs: input plus output price per 1M tokens."""
        price = self.price
        return None if price is None else price.input + price.output


@dataclass(slots=True)
class ModelGroup:
    name: str
    kind: str
    deployments: list[Deployment]
    description: str | None = None
