"""The store's database fixtures (a migrated SQLite file and a fresh PostgreSQL database)."""

from tests.store.conftest import backend, empty_backend

__all__ = ["backend", "empty_backend"]
