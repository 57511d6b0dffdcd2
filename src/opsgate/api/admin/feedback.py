"""Admin reads of scores: `GET /admin/v1/feedback`, and the scores that `GET /traces/{id}` and
`GET /usage` carry (api/admin/traces.py calls `trace_scores` and `usage_scores`).

Scope: a caller sees the scores of the traces it may read (access/permissions.py
`scope_filter`: admins all, team roles their team, member and service their own user or key);
a filter naming another scope is a 403 `outside_scope`, as for traces.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

from starlette.datastructures import QueryParams
from starlette.responses import Response

from opsgate.access.permissions import Permission, scope_filter, scoped_filters
from opsgate.access.principal import Principal
from opsgate.api.responses import JSONResponse
from opsgate.api.trace_json import iso
from opsgate.errors import BadRequestError
from opsgate.feedback.holders import score_json
from opsgate.feedback.scores import (
    SCORE_DIMENSIONS,
    SCORE_FILTERS,
    RollupQuery,
    RollupRow,
    ScoreDimension,
    ScoreQuery,
)
from opsgate.feedback.service import FeedbackService
from opsgate.store.queries import DEFAULT_LIMIT, InvalidQueryError
from opsgate.store.usage import UsageQuery
from opsgate.trace import TraceRecord
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.queries import parse_time

P = Permission

ALIASES = {
    "trace": "trace_id",
    "session": "session_id",
    "key": "key_id",
    "team": "team_id",
    "user": "user_id",
}
"""Short names the list accepts beside the column names."""
LIST_PARAMS = frozenset({*SCORE_FILTERS, *ALIASES, "since", "until", "limit", "cursor"})


def _one(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadRequestError(f"{name} may be given once", code="invalid_parameter", param=name)
    return values[0] if values else None


def score_query(params: QueryParams, who: Principal, now: float) -> ScoreQuery:
    """A `ScoreQuery` from `/admin/v1/feedback` parameters, the caller's scope forced in."""
    asked: dict[str, Any] = {}
    for name in LIST_PARAMS - {"since", "until", "limit", "cursor"}:
        value = _one(params, name)
        if value is not None:
            column = ALIASES.get(name, name)
            if asked.get(column, value) != value:
                raise BadRequestError(
                    f"{name} repeats another filter", code="invalid_parameter", param=name
                )
            asked[column] = value
    for bound in ("since", "until"):
        raw = _one(params, bound)
        if raw is not None:
            asked[bound] = parse_time(raw, now, bound)
    limit = _one(params, "limit")
    try:
        asked["limit"] = int(limit) if limit is not None else DEFAULT_LIMIT
    except ValueError:
        raise BadRequestError("limit must be an integer", param="limit") from None
    asked["cursor"] = _one(params, "cursor")
    rule = scope_filter(who)
    asked.update(scoped_filters(who, {k: asked.get(k) for k in rule}, rule))
    try:
        return ScoreQuery(**asked)
    except InvalidQueryError as exc:
        raise BadRequestError(str(exc), code="invalid_parameter", param=exc.field) from None


async def list_feedback(call: AdminCall) -> Response:
    """List scores, newest first (filters: metric, source, trace, session, model, deployment,
    key, team, user, end_user, since, until; paged by cursor)."""
    query = score_query(call.query, call.who, time.time())
    page = await call.gateway.feedback.store.list_scores(query)
    return JSONResponse(
        {
            "object": "list",
            "data": [score_json(s) for s in page.items],
            "next_cursor": page.next_cursor,
        }
    )


async def trace_scores(feedback: FeedbackService, record: TraceRecord) -> dict[str, Any]:
    """`scores` (the trace's own) and `session_scores` (its session's, within the trace's
    team) for the trace detail; the caller may read the trace, so it may read these."""
    own = await feedback.store.for_traces([record.trace_id])
    session: list[Any] = []
    if record.session_id is not None:
        scope = {"team_id": record.team_id} if record.team_id else {"key_id": record.key_id or ""}
        session = await feedback.store.for_sessions([record.session_id], scope)
    return {
        "scores": [score_json(s) for s in own],
        "session_scores": [score_json(s) for s in session],
    }


def rollup_query(query: UsageQuery) -> RollupQuery | None:
    """The score rollup matching a usage rollup; None where scores cannot follow it (they
    have no `status` and no prompt columns)."""
    dims = set(query.group_by) | set(query.filters)
    if not dims <= set(SCORE_DIMENSIONS):
        return None
    group = cast(tuple[ScoreDimension, ...], tuple(query.group_by))
    filters = cast(dict[ScoreDimension, str], dict(query.filters))
    return RollupQuery(query.since, query.until, query.step, group, filters)


async def usage_scores(
    feedback: FeedbackService, query: UsageQuery, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Usage rows (`usage_json`) with each bucket's scores under `scores` (`{metric: {count,
    mean, min, max, labels}}`); buckets with scores but no requests are added with zero
    usage. Rows are returned unchanged when feedback is off or the rollup groups by status."""
    rollup = rollup_query(query) if feedback.config.enabled else None
    if rollup is None:
        return rows
    rolled = await feedback.store.rollup(rollup)
    found = {(r.bucket, _key(r.group, query.group_by)): r for r in rolled}
    for row in rows:
        key = (row["bucket_start"] or 0, _key(row["group"], query.group_by))
        match = found.pop(key, None)
        row["scores"] = _metrics(match) if match is not None else {}
    for (bucket, _), extra in sorted(found.items()):
        rows.append(_scores_only(extra, bucket, query))
    return rows


def _key(group: dict[str, Any], dims: Sequence[str]) -> tuple[str, ...]:
    return tuple(group.get(d) or "" for d in dims)


def _metrics(row: RollupRow) -> dict[str, Any]:
    return {
        name: {
            "type": t.type,
            "count": t.count,
            "mean": t.mean,
            "min": t.min,
            "max": t.max,
            "labels": t.labels,
        }
        for name, t in row.metrics.items()
    }


def _scores_only(row: RollupRow, bucket: int, query: UsageQuery) -> dict[str, Any]:
    timed = query.step < 60 * 10**9
    return {
        "object": "usage.bucket",
        "bucket": iso(bucket) if timed else None,
        "bucket_start": bucket if timed else None,
        "group": {name: row.group.get(name) or None for name in query.group_by},
        "requests": 0,
        "scores": _metrics(row),
    }


routes = [
    admin_route("GET", "/admin/v1/feedback", list_feedback, P.TRACES_READ, query=LIST_PARAMS),
]
