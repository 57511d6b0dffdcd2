"""Scorer errors: a bad scorer spec is the caller's mistake (400 at the API)."""

from __future__ import annotations

from opsgate.errors import BadRequestError


class ScorerConfigError(BadRequestError):
    """A scorer spec names an unknown type, misses a parameter or has a bad value."""

    default_code = "invalid_scorer"
