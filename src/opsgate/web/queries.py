"""Query parameters of the trace and usage reads, parsed one way for the admin API
(`GET /admin/v1/traces`, `/usage`) and the dashboard's filters, so both always agree.

Every function raises `BadRequestError` (400) naming the parameter; a typo is refused, never
ignored (`check_known`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import get_args

from starlette.datastructures import QueryParams

from opsgate.errors import BadRequestError
from opsgate.store.queries import DEFAULT_LIMIT, InvalidQueryError, TraceQuery
from opsgate.store.usage import UsageDimension, UsageQuery

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_EQUALITY_PARAMS = (
    "model",
    "deployment",
    "key_id",
    "team_id",
    "end_user",
    "status",
    "prompt_name",
    "prompt_version",
    "prompt_label",
)
_RANGE_PARAMS = ("since", "until")
_TRACE_ONLY = (
    "session_id",
    "cache",
    "malformed",
    "min_duration_ms",
    "metadata",
    "limit",
    "cursor",
)
TRACE_PARAMS = frozenset((*_EQUALITY_PARAMS, *_RANGE_PARAMS, *_TRACE_ONLY))
USAGE_PARAMS = frozenset((*_EQUALITY_PARAMS, *_RANGE_PARAMS, "group_by", "bucket"))
BUCKETS = {"minute": 60, "hour": 3600, "day": 86_400, "none": 60 * 10**9}
"""Bucket widths in seconds; `none` is one bucket wider than any epoch, so all rows share 0."""
GROUP_ALIASES: dict[str, UsageDimension] = {
    **{name: name for name in get_args(UsageDimension)},
    "key": "key_id",
    "team": "team_id",
    "user": "end_user",
    "prompt": "prompt_name",
    "version": "prompt_version",
    "label": "prompt_label",
}
MAX_BUCKETS = 50_000
DEFAULT_USAGE_WINDOW_S = 86_400


def parse_time(value: str, now: float, param: str) -> float:
    """Epoch seconds from ISO-8601 (naive means UTC), epoch seconds, `now`, or an age like
    `15m`, `2h`, `7d`, `1w` (that long before now)."""
    epoch = _epoch(value.strip(), now)
    if epoch is not None and math.isfinite(epoch):
        return epoch
    raise BadRequestError(
        f"{param} must be ISO-8601 (2024-05-01T12:00:00Z), epoch seconds or an age like 15m, "
        f"2h, 7d; got {value!r}",
        code="invalid_time",
        param=param,
    )


def _epoch(text: str, now: float) -> float | None:
    relative = _RELATIVE.match(text)
    if relative:
        return now - float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
    if text == "now":
        return now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _invalid(param: str, message: str) -> BadRequestError:
    return BadRequestError(message, code="invalid_parameter", param=param)


def check_known(params: QueryParams, allowed: Collection[str]) -> None:
    """400 `unknown_parameter` naming the first unknown one: a typo must not be ignored."""
    unknown = sorted(set(params.keys()) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise BadRequestError(
            f"unknown query parameter {unknown[0]!r}; known: {known}",
            code="unknown_parameter",
            param=unknown[0],
        )


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise _invalid(name, f"{name} may be given once")
    return values[0] if values else None


def _number(params: QueryParams, name: str, kind: Callable[[str], float]) -> float | None:
    raw = _single(params, name)
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _invalid(name, f"{name} must be a number")
    return value


def flag(params: QueryParams, name: str) -> bool:
    """`true`/`1` or `false`/`0` (the default when absent)."""
    raw = (_single(params, name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise _invalid(name, f"{name} must be true or false")
    return raw in ("true", "1")


def _metadata(params: QueryParams) -> tuple[tuple[str, str], ...]:
    pairs = []
    for raw in params.getlist("metadata"):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise _invalid("metadata", f"metadata filters are key:value, got {raw!r}")
        pairs.append((key, value))
    return tuple(pairs)


def _time_range(params: QueryParams, now: float) -> tuple[float | None, float | None]:
    since, until = _single(params, "since"), _single(params, "until")
    start = parse_time(since, now, "since") if since is not None else None
    end = parse_time(until, now, "until") if until is not None else None
    if start is not None and end is not None:
        _ordered(start, end)
    return start, end


def _ordered(since: float, until: float) -> None:
    if since >= until:
        raise BadRequestError("since must be before until", code="invalid_time", param="since")


def trace_query(params: QueryParams, now: float) -> TraceQuery:
    """A `TraceQuery` from `/admin/v1/traces` query parameters; BadRequestError if invalid."""
    check_known(params, TRACE_PARAMS)
    since, until = _time_range(params, now)
    limit = _number(params, "limit", int)
    try:
        return TraceQuery(
            since=since,
            until=until,
            model=_single(params, "model"),
            deployment=_single(params, "deployment"),
            key_id=_single(params, "key_id"),
            team_id=_single(params, "team_id"),
            end_user=_single(params, "end_user"),
            session_id=_single(params, "session_id"),
            status=_single(params, "status"),
            prompt_name=_single(params, "prompt_name"),
            prompt_version=_single(params, "prompt_version"),
            prompt_label=_single(params, "prompt_label"),
            malformed=_single(params, "malformed"),
            cache=_single(params, "cache"),
            min_duration_ms=_number(params, "min_duration_ms", float),
            metadata=_metadata(params),
            limit=int(limit) if limit is not None else DEFAULT_LIMIT,
            cursor=_single(params, "cursor"),
        )
    except InvalidQueryError as exc:  # InvalidCursorError included
        raise _invalid(exc.field, str(exc)) from None


def _group_by(params: QueryParams) -> tuple[tuple[UsageDimension, ...], str | None]:
    """(dimensions, time bucket named in group_by) from `group_by=model,hour` (repeatable)."""
    dims: list[UsageDimension] = []
    bucket: str | None = None
    names = [n.strip() for raw in params.getlist("group_by") for n in raw.split(",")]
    for name in filter(None, names):
        if name in BUCKETS and name != "none":
            bucket = name
        elif name in GROUP_ALIASES:
            if GROUP_ALIASES[name] not in dims:
                dims.append(GROUP_ALIASES[name])
        else:
            known = ", ".join([*GROUP_ALIASES, "minute", "hour", "day"])
            raise _invalid("group_by", f"unknown group_by dimension {name!r}; known: {known}")
    return tuple(dims), bucket


def usage_query(params: QueryParams, now: float) -> tuple[UsageQuery, str]:
    """A `UsageQuery` and the bucket name from `/admin/v1/usage` query parameters."""
    check_known(params, USAGE_PARAMS)
    dims, grouped_bucket = _group_by(params)
    bucket = _single(params, "bucket")
    if bucket is not None and bucket not in BUCKETS:
        raise _invalid("bucket", f"bucket must be one of {', '.join(BUCKETS)}")
    if bucket is not None and grouped_bucket is not None and bucket != grouped_bucket:
        raise _invalid("bucket", f"group_by names {grouped_bucket} but bucket is {bucket}")
    bucket = bucket or grouped_bucket or "none"
    since, until = _time_range(params, now)
    until = now if until is None else until
    since = until - DEFAULT_USAGE_WINDOW_S if since is None else since
    _ordered(since, until)
    if bucket != "none" and (until - since) / BUCKETS[bucket] > MAX_BUCKETS:
        raise _invalid(
            "bucket", f"over {MAX_BUCKETS} {bucket} buckets; use a wider bucket or shorter range"
        )
    filters: dict[UsageDimension, str] = {}
    for name in _EQUALITY_PARAMS:
        value = _single(params, name)
        if value is not None:
            filters[GROUP_ALIASES[name]] = value
    query = UsageQuery(since, until, step=BUCKETS[bucket], group_by=dims, filters=filters)
    return query, bucket
