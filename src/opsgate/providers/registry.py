"""Where dialects are registered: built-ins register exactly as plugins do.

A plugin package exposes an entry point in the `opsgate.providers` group pointing at a function
`register(register_provider)`; it is called once at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from opsgate.providers.base import Provider

ProviderClass = type[Provider]
_REGISTRY: dict[str, ProviderClass] = {}
_loaded = False


def register_provider(cls: ProviderClass, name: str | None = None) -> ProviderClass:
    _REGISTRY[name or cls.dialect] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from opsgate.providers import builtin

    builtin.register(register_provider)
    for ep in entry_points(group="opsgate.providers"):
        hook: Callable[[Callable[..., ProviderClass]], None] = ep.load()
        hook(register_provider)


def provider_class(name: str) -> ProviderClass | None:
    _load()
    return _REGISTRY.get(name)


def provider_names() -> list[str]:
    _load()
    return sorted(_REGISTRY)
