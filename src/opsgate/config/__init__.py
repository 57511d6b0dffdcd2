"""Config: the file's schema and its loading."""

from opsgate.config.loader import ConfigError, load_config, parse_config
from opsgate.config.schema import (
    Config,
    DeploymentConfig,
    ModelGroupConfig,
    Price,
    RouterConfig,
    ServerConfig,
    Settings,
)

__all__ = [
    "Config",
    "ConfigError",
    "DeploymentConfig",
    "ModelGroupConfig",
    "Price",
    "RouterConfig",
    "ServerConfig",
    "Settings",
    "load_config",
    "parse_config",
]
