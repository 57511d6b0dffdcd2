"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Any

JSONObject = dict[str, Any]
"""A decoded JSON object, e.g. a request body or an OpenAI-shaped response."""

Headers = dict[str, str]
