"""Which body cipher a gateway uses, and what happens when no key is configured.

With keys configured (`OPSGATE_ENCRYPTION_KEYS`, a key file) they are used. Without, and with
bodies to store:

- on a SQLite file (the embedded, one-machine default) a key file is created beside the database
  (`<db>.key`, mode 0600) and its path is logged, so `opsgate serve` on a laptop just works;
- on PostgreSQL (replicas, production) start-up stops with a config error: a key made up by one
  replica could not be read by the others and would vanish with its container, so the operator
  must provide one. Bodies are never stored in plain text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from opsgate.config.schema import Config
from opsgate.store.crypto import (
    KEY_FILE_ENV,
    KEYS_ENV,
    BodyCipher,
    EncryptionConfigError,
    create_key_file,
    load_keyring,
    read_key_file,
)
from opsgate.store.db import is_sqlite_file

log = logging.getLogger("opsgate.compliance")


def stores_bodies(config: Config) -> bool:
    return config.traces.enabled and config.traces.store_bodies != "off"


def default_key_file(database_url: str) -> Path | None:
    """`<db file>.key` beside a SQLite file (so `/opsgate.db*` ignore rules cover it), else None."""
    if not is_sqlite_file(database_url):
        return None
    database = Path(str(make_url(database_url).database))
    return database.with_name(database.name + ".key")


def configured_cipher(config: Config, env: Mapping[str, str] | None = None) -> BodyCipher | None:
    """The keys that exist (environment, key file, or the file made beside SQLite); never makes
    one. This is what tools that only read or re-seal bodies use."""
    env = os.environ if env is None else env
    keyring = load_keyring(env, config.encryption.key_file)
    if keyring is not None:
        return BodyCipher(keyring)
    auto = default_key_file(config.settings.database_url)
    if auto is not None and auto.exists():
        return BodyCipher(read_key_file(auto))
    return None


def resolve_cipher(config: Config, env: Mapping[str, str] | None = None) -> BodyCipher | None:
    """The cipher for this config; raises `EncryptionConfigError` when bodies would be stored
    and no key can be found or made."""
    found = configured_cipher(config, env)
    if found is not None or not stores_bodies(config):
        return found
    auto = default_key_file(config.settings.database_url)
    if auto is None:
        raise EncryptionConfigError(
            f"traces.store_bodies is {config.traces.store_bodies!r} but no encryption key is "
            f"configured: set {KEYS_ENV} (kid:base64 of 32 random bytes, e.g. from "
            f"`opsgate keys new-encryption-key`), {KEY_FILE_ENV} or encryption.key_file; every "
            "replica needs the same keys"
        )
    keyring = create_key_file(auto)
    log.warning(
        "no body encryption key configured: using %s (key %s). Back it up: bodies encrypted "
        "with it cannot be read without it.",
        auto,
        keyring.current,
    )
    return BodyCipher(keyring)
