"""Errors a trace store raises, so callers can tell "try later" from "this data is refused".

These are internal (never shown to a client), hence not part of `opsgate.errors`.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached or timed out; the same write may succeed later."""


class RecordRejectedError(StoreError):
    """The database refused the data itself; retrying the same batch will fail again."""
