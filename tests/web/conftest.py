"""The store's PostgreSQL fixtures (a migrated database, a cuttable TCP path) for outage tests."""

from tests.store.conftest import pg_backend, proxy

__all__ = ["pg_backend", "proxy"]
