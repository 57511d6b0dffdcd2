"""Alembic migrations for the store, packaged so `opsgate.store.migrate.upgrade` needs no ini file.

Revisions are append-only and named (`v0001_traces`, `v0002_...`); never edit a released one.
"""
