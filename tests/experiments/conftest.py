"""Experiment fixtures: an empty database on SQLite and on PostgreSQL (`database_url`), and a
real gateway with two models on fake upstreams, a declared `thumbs` metric and experiments."""

from __future__ import annotations

from tests.access.conftest import access_gateway, database_url
from tests.store.conftest import backend, empty_backend

__all__ = ["access_gateway", "backend", "database_url", "empty_backend"]
