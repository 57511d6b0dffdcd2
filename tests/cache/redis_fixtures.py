"""A private key prefix on the local Redis per test, deleted afterwards (never FLUSHALL)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.cache.helpers import REDIS_URL
from tests.fixtures.needs import need


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    need(redis_up(), "Redis is not running on 127.0.0.1:6379")
    prefix = f"opsgate-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
