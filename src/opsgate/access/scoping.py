"""The scope rule applied to trace and usage reads, for the admin read API to call.

    query = scope_trace_query(who, trace_query(params, now))   # 403 if it names another scope
    if record is None or not may_read_trace(who, record): 404
    query = scope_usage_query(who, usage_query(...))

Where the store cannot filter on the rule's column (no `user_id` filter on traces, no `user_id`
usage dimension), the scope narrows to the caller's key instead: narrower, never wider.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from opsgate.access.permissions import in_scope, is_global, scope_filter, scoped_filters
from opsgate.access.principal import Principal
from opsgate.store.queries import TraceQuery
from opsgate.store.usage import DIMENSIONS, UsageDimension, UsageQuery
from opsgate.trace import TraceRecord


def _rule(who: Principal, columns: set[str]) -> dict[str, str]:
    rule = scope_filter(who)
    return rule if set(rule) <= columns else {"key_id": who.key_id}


def scope_trace_query(who: Principal, query: TraceQuery) -> TraceQuery:
    rule = _rule(who, {f.name for f in dataclasses.fields(TraceQuery)})
    asked = {name: getattr(query, name) for name in rule}
    forced: dict[str, Any] = scoped_filters(who, asked, rule)
    return dataclasses.replace(query, **forced)


def scope_usage_query(who: Principal, query: UsageQuery) -> UsageQuery:
    rule = _rule(who, set(DIMENSIONS))
    filters: dict[str, str] = {str(k): v for k, v in query.filters.items()}
    forced = scoped_filters(who, {name: filters.get(name) for name in rule}, rule)
    merged = cast(dict[UsageDimension, str], {**filters, **forced})
    return dataclasses.replace(query, filters=merged)


def may_read_trace(who: Principal, record: TraceRecord) -> bool:
    return in_scope(who, team_id=record.team_id, user_id=record.user_id, key_id=record.key_id)


def score_scope(who: Principal) -> dict[str, str]:
    """The traces a caller may score (`POST /v1/feedback`): all of them for admins, the team's
    for a key in a team (whatever its role: an application scores its team's answers with the
    key it has), else the key's own. Apply it like `scope_filter`; an id outside it is a 404."""
    if is_global(who):
        return {}
    if who.team_id:
        return {"team_id": who.team_id}
    return {"key_id": who.key_id}
