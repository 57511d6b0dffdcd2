"""Key rotation: re-seal every stored body under the current key, in batches.

Put the new key first in the keyring (old ones after it), restart or reload, then run this
(`opsgate keys rotate-encryption`). Bodies stored before encryption was on are sealed too. Each
update is conditional on the body still being what was read, so a concurrent retention pass or
erasure is never undone. Bodies whose key is gone are counted and named, never dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opsgate.store.crypto import BODY_FIELDS, BodyCipher, DecryptionError
from opsgate.store.tables.traces import traces


@dataclass
class RotationReport:
    key_id: str
    rows_checked: int = 0
    bodies_resealed: int = 0
    failures: list[str] = field(default_factory=list)
    """One line per body that could not be opened (its key is not configured, or it is altered)."""


async def reseal_all(
    engine: AsyncEngine, cipher: BodyCipher, *, batch: int = 500, pause: float = 0.0
) -> RotationReport:
    report = RotationReport(cipher.current_key_id)
    has_body = or_(traces.c.request_body.is_not(None), traces.c.response_body.is_not(None))
    columns = (traces.c.trace_id, traces.c.request_body, traces.c.response_body)
    after = ""
    while True:
        stmt = (
            select(*columns)
            .where(has_body, traces.c.trace_id > after)
            .order_by(traces.c.trace_id)
            .limit(batch)
        )
        async with engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            return report
        async with engine.begin() as conn:
            for trace_id, *bodies in rows:
                report.rows_checked += 1
                for name, old in zip(BODY_FIELDS, bodies, strict=True):
                    if old is None or not cipher.needs_reseal(bytes(old)):
                        continue
                    try:
                        plain = cipher.open(bytes(old), trace_id, name)
                    except DecryptionError as exc:
                        report.failures.append(str(exc))
                        continue
                    new = cipher.seal(plain, trace_id, name)
                    column = traces.c[name]
                    done = await conn.execute(
                        update(traces)
                        .where(traces.c.trace_id == trace_id, column == bytes(old))
                        .values({name: new})
                    )
                    report.bodies_resealed += done.rowcount
        after = rows[-1][0]
        await asyncio.sleep(pause)
