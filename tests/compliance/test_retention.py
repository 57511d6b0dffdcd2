"""Retention removes exactly what is past its policy (key over team over default, field by
field), on SQLite and PostgreSQL, in batches, and audits the pass."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from opsgate.audit import AuditLog
from opsgate.compliance.retention import DAY, Retention
from opsgate.config.compliance import RetentionConfig
from opsgate.store import SqlTraceStore
from opsgate.store.tables.traces import spans, traces
from tests.store.conftest import make_trace

NOW = 1_800_000_000.0
AGES = (0.5, 1.5, 3.0, 10.0, 40.0, 100.0)
SCOPES = {  # name: (team_id, key_id)
    "keyx": ("team-a", "key-x"),
    "teama": ("team-a", "key-a"),
    "teamb": ("team-b", "key-b"),
    "noteam": (None, "key-n"),
    "keyy": ("team-c", "key-y"),
    "nobody": (None, None),
}
POLICY = {
    "batch_size": 2,
    "pause": 0,
    "default": {"traces_days": 30, "bodies_days": 7},
    "teams": {"team-a": {"traces_days": 90}, "team-b": {"traces_days": None, "bodies_days": 1}},
    "keys": {"key-x": {"traces_days": 2}, "key-y": {"bodies_days": None}},
}
# What must remain, written out by hand from POLICY: scope -> (ages kept, ages with bodies kept).
EXPECTED = {
    "keyx": ((0.5, 1.5), (0.5, 1.5)),  # key: 2 days; bodies: default 7
    "teama": ((0.5, 1.5, 3.0, 10.0, 40.0), (0.5, 1.5, 3.0)),  # team: 90; bodies: default 7
    "teamb": (AGES, (0.5,)),  # team: forever; bodies: 1 day
    "noteam": ((0.5, 1.5, 3.0, 10.0), (0.5, 1.5, 3.0)),  # default
    "keyy": ((0.5, 1.5, 3.0, 10.0), (0.5, 1.5, 3.0, 10.0)),  # unknown team: default; bodies kept
    "nobody": ((0.5, 1.5, 3.0, 10.0), (0.5, 1.5, 3.0)),
}


def _id(scope: str, age: float) -> str:
    return f"{scope}-{age}"


async def _seed(store: SqlTraceStore) -> None:
    records = []
    for i, (scope, (team, key)) in enumerate(SCOPES.items()):
        for j, age in enumerate(AGES):
            record = make_trace(i * 10 + j, team_id=team, key_id=key)
            record.trace_id = _id(scope, age)
            for span in record.spans:
                span.trace_id = record.trace_id
            record.started_at = NOW - age * DAY
            record.request_body, record.response_body = b"prompt", b"answer"
            records.append(record)
    await store.write_batch(records)


async def _remaining(store: SqlTraceStore) -> tuple[set[str], set[str], int]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(traces.c.trace_id, traces.c.request_body))).all()
        span_traces = (
            await conn.execute(select(func.count(func.distinct(spans.c.trace_id))))
        ).scalar_one()
    return {r[0] for r in rows}, {r[0] for r in rows if r[1] is not None}, int(span_traces)


async def test_one_pass_removes_exactly_what_is_past_policy(sql_store: SqlTraceStore) -> None:
    await _seed(sql_store)
    config = RetentionConfig.model_validate(POLICY)
    audit = AuditLog(sql_store.engine)
    retention = Retention(sql_store.engine, lambda: config, audit=audit, clock=lambda: NOW)
    report = await retention.run_once()

    kept, with_bodies, traces_with_spans = await _remaining(sql_store)
    want_kept = {_id(s, a) for s, (ages, _) in EXPECTED.items() for a in ages}
    want_bodies = {_id(s, a) for s, (_, ages) in EXPECTED.items() for a in ages}
    assert kept == want_kept
    assert with_bodies == want_bodies
    assert traces_with_spans == len(want_kept), "spans went with their traces"
    assert report.traces_deleted == len(SCOPES) * len(AGES) - len(want_kept)
    assert report.bodies_cleared == len(want_kept) - len(want_bodies)
    entries = await audit.entries(action="retention.pass")
    assert len(entries) == 1 and entries[0].actor == "system:retention"
    assert entries[0].detail_data() == {
        "traces_deleted": report.traces_deleted,
        "bodies_cleared": report.bodies_cleared,
    }

    again = await retention.run_once()
    assert again.traces_deleted == again.bodies_cleared == 0
    assert len(await audit.entries(action="retention.pass")) == 1, "empty passes are not logged"


async def test_no_policy_keeps_everything(sql_store: SqlTraceStore) -> None:
    await _seed(sql_store)
    config = RetentionConfig()
    assert not config.active
    report = await Retention(sql_store.engine, lambda: config, clock=lambda: NOW).run_once()
    kept, with_bodies, _ = await _remaining(sql_store)
    assert report.traces_deleted == report.bodies_cleared == 0
    assert len(kept) == len(with_bodies) == len(SCOPES) * len(AGES)


@pytest.mark.parametrize(
    "bad",
    [
        {"default": {"traces_days": 0}},
        {"default": {"traces_days": -1}},
        {"teams": {"t": {"days": 3}}},
        {"batch_size": 0},
    ],
)
def test_bad_policies_are_config_errors(bad: dict[str, object]) -> None:
    from opsgate.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="retention"):
        parse_config({"retention": bad}, source="<t>", env={})
