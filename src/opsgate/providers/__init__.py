"""Provider adapters: one module per upstream API dialect."""

from opsgate.providers.base import CallContext, Capabilities, Provider
from opsgate.providers.registry import provider_class, provider_names, register_provider
from opsgate.providers.transport import HTTPClient

__all__ = [
    "CallContext",
    "Capabilities",
    "HTTPClient",
    "Provider",
    "provider_class",
    "provider_names",
    "register_provider",
]
