"""Admin API for the response cache (`/admin/v1/cache`): stats, purge, erase by end user.

- `GET  /admin/v1/cache`: entries per backend.
- `POST /admin/v1/cache/purge`: `{"namespace", "model", "key_id", "end_user", "older_than",
  "entry"}` (all given fields must match; `older_than` is seconds or `15m`/`2h`/`7d`), or
  `{"all": true}`. Answers `{"purged": {"exact": n, "semantic": m}}`.
- `DELETE /admin/v1/cache/entries/{key}`: one entry, by the key a trace's `cache_lookup` span shows.
- `POST /admin/v1/cache/erase`: `{"end_user": "..."}`, every entry made by that end user.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from starlette.responses import Response

from opsgate.api.responses import JSONResponse
from opsgate.cache.service import CacheService, Purged
from opsgate.cache.store import PurgeFilter
from opsgate.errors import BadRequestError, ServiceUnavailableError
from opsgate.web.admin import AdminCall, admin_route

log = logging.getLogger("opsgate.api")

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_TEXT_FIELDS = ("namespace", "model", "key_id", "end_user", "entry")


def _cache(call: AdminCall) -> CacheService:
    """The cache, or 503 `cache_disabled` when the config turns it off."""
    if call.gateway.cache is None:
        raise ServiceUnavailableError(
            "the cache is off in the config (cache.enabled: false)", code="cache_disabled"
        )
    return call.gateway.cache


async def _body(call: AdminCall) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}`."""
    raw = await call.request.body()
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object", code="invalid_json")
    return data


def parse_age(value: Any) -> float:
    """Seconds from a number or `90s`, `15m`, `2h`, `7d`, `1w`."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _AGE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise BadRequestError(
            "older_than must be seconds or an age like 15m, 2h, 7d",
            code="invalid_value",
            param="older_than",
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def purge_filter(data: dict[str, Any]) -> PurgeFilter:
    known = {*_TEXT_FIELDS, "older_than", "all"}
    if unknown := set(data) - known:
        raise BadRequestError(
            f"unknown fields {sorted(unknown)}; expected {sorted(known)}", code="invalid_value"
        )
    for name in _TEXT_FIELDS:
        if data.get(name) is not None and not (isinstance(data[name], str) and data[name]):
            raise BadRequestError(f"{name} must be a non-empty string", param=name)
    older = data.get("older_than")
    match = PurgeFilter(
        **{name: data.get(name) for name in _TEXT_FIELDS},
        older_than=parse_age(older) if older is not None else None,
    )
    if match.everything and data.get("all") is not True:
        raise BadRequestError(
            "name what to purge (namespace, model, key_id, end_user, older_than, entry) "
            'or send {"all": true}',
            code="missing_required_parameter",
        )
    return match


def _purged(result: Purged) -> Response:
    return JSONResponse({"purged": {"exact": result.exact, "semantic": result.semantic}})


async def stats(call: AdminCall) -> Response:
    """Entries per cache backend"""
    return JSONResponse(await _cache(call).stats())


async def purge(call: AdminCall) -> Response:
    """Purge the entries matching every given field (or `{"all": true}`)"""
    service = _cache(call)
    match = purge_filter(await _body(call))
    result = await service.purge(match)
    log.info("cache purge %s: %s", match, result)
    return _purged(result)


async def purge_entry(call: AdminCall) -> Response:
    """Purge one entry, by the key a trace's `cache_lookup` span shows"""
    return _purged(await _cache(call).purge(PurgeFilter(entry=call.path("key"))))


async def erase(call: AdminCall) -> Response:
    """Erase every entry made by one end user"""
    service = _cache(call)
    user = (await _body(call)).get("end_user")
    if not isinstance(user, str) or not user:
        raise BadRequestError("end_user must be a non-empty string", param="end_user")
    return _purged(await service.erase_end_user(user))


routes = [
    admin_route("GET", "/admin/v1/cache", stats),
    admin_route("POST", "/admin/v1/cache/purge", purge),
    admin_route("DELETE", "/admin/v1/cache/entries/{key}", purge_entry),
    admin_route("POST", "/admin/v1/cache/erase", erase),
]
