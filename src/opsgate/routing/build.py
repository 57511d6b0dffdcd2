"""Config phase two for routing: turn validated config into deployments with live providers.

Health is carried over by deployment id, so a config reload does not forget which upstream is
slow or whose circuit is open.
"""

from __future__ import annotations

from opsgate.accounting import resolve_price
from opsgate.config.loader import ConfigError
from opsgate.config.schema import Config
from opsgate.providers.adapter_loading import AdapterLoading
from opsgate.providers.registry import provider_class, provider_names
from opsgate.providers.transport import HTTPClient
from opsgate.routing.deployment import Deployment, ModelGroup
from opsgate.routing.health import Circuit, Health, RateWindow
from opsgate.routing.router import Router


def check_providers(config: Config, source: str) -> None:
    """Raise `ConfigError` for unknown providers and provider-specific setting problems."""
    problems: list[str] = []
    for i, group in enumerate(config.models):
        for j, dep in enumerate(group.deployments):
            path = f"models[{i}].deployments[{j}]"
            cls = provider_class(dep.provider)
            if cls is None:
                problems.append(
                    f"{path}.provider: unknown provider {dep.provider!r}; "
                    f"expected one of {', '.join(provider_names())}"
                )
                continue
            if group.kind == "embedding" and not cls.capabilities.embeddings:
                problems.append(f"{path}.provider: {dep.provider!r} does not serve embeddings")
            if (dep.adapter or dep.team_adapters) and not cls.capabilities.adapters:
                problems.append(f"{path}.adapter: {dep.provider!r} does not serve LoRA adapters")
            if dep.adapter_loading != "off" and not cls.capabilities.adapters:
                problems.append(
                    f"{path}.adapter_loading: {dep.provider!r} does not serve LoRA adapters"
                )
            problems.extend(f"{path}.{p}" for p in cls.check(dep))
    if problems:
        raise ConfigError(source, problems)


def build_router(
    config: Config,
    http: HTTPClient,
    *,
    source: str = "<config>",
    previous: Router | None = None,
    adapters: AdapterLoading | None = None,
) -> Router:
    """`adapters`: the process's adapter loading, kept across reloads (a fresh one, without
    the registry, when not given)."""
    check_providers(config, source)
    adapters = adapters or AdapterLoading(http)
    old = {
        d.id: d.health
        for g in (previous.groups.values() if previous else ())
        for d in g.deployments
    }
    groups: dict[str, ModelGroup] = {}
    for group in config.models:
        deployments: list[Deployment] = []
        for j, dep in enumerate(group.deployments):
            dep_id = dep.id or f"{group.name}/{dep.provider}/{dep.model}"
            if any(d.id == dep_id for d in deployments):
                dep_id = f"{dep_id}#{j}"
            cls = provider_class(dep.provider)
            assert cls is not None
            health = old.get(dep_id) or Health(
                circuit=Circuit(
                    config.router.circuit.failure_threshold, config.router.circuit.cooldown
                ),
                window=RateWindow(dep.rpm, dep.tpm),
            )
            health.window.rpm, health.window.tpm = dep.rpm, dep.tpm
            price = resolve_price(dep.model, dep.price)
            provider = cls(dep, http)
            provider.adapters = adapters.for_deployment(dep)
            deployments.append(Deployment(dep_id, group.name, dep, provider, health, price))
        groups[group.name] = ModelGroup(group.name, group.kind, deployments, group.description)
    return Router(groups, config.router)
