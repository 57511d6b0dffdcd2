"""A review queue's rule and settings, as a caller sends them (pydantic: unknown fields refused).

```json
{"name": "thumbs-down", "rule": {"since": "7d", "scores": [{"metric": "thumbs", "value": false}]}}
{"name": "low-judge", "rule": {"scores": [{"metric": "quality", "op": "lt", "value": 0.5,
                                           "source": "evaluator"}]}}
{"name": "guard-flags", "rule": {"flagged": true}}
{"name": "sample", "rule": {"model": "support-bot"}, "sample": 0.01}
```

The rule is a trace filter (feedback/selection.py); `sample` keeps that share of the matching
traces, decided by a hash of the queue and trace ids, so a trace is in or out for good however
often the queue is filled.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from opsgate.feedback.selection import TraceFilter

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Reviewer = Annotated[str, Field(min_length=1, max_length=256)]
DEFAULT_LEASE = 600.0
DEFAULT_SINCE = "7d"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueCreate(_Strict):
    name: Name
    description: str | None = Field(default=None, max_length=2000)
    team_id: str | None = Field(default=None, description="default: your team (admins: none)")
    rule: TraceFilter = Field(default_factory=lambda: TraceFilter(since=DEFAULT_SINCE))
    sample: float = Field(default=1.0, gt=0, le=1, description="share of matching traces kept")
    metrics: list[str] = Field(
        default_factory=list, max_length=32, description="what reviewers label; empty: every one"
    )
    reviewers: list[Reviewer] = Field(
        default_factory=list,
        max_length=500,
        description="user or key ids of members allowed to review this queue",
    )
    lease_seconds: float = Field(
        default=DEFAULT_LEASE, ge=10, le=86_400, description="how long a claimed item is held"
    )


class QueueUpdate(_Strict):
    """Only the fields sent change; the rule is fixed (make a new queue for another rule)."""

    description: str | None = Field(default=None, max_length=2000)
    metrics: list[str] | None = Field(default=None, max_length=32)
    reviewers: list[Reviewer] | None = Field(default=None, max_length=500)
    lease_seconds: float | None = Field(default=None, ge=10, le=86_400)


def sampled(queue_id: str, trace_id: str, rate: float) -> bool:
    """Whether `trace_id` is in `queue_id`'s sample (stable: the same answer every time)."""
    if rate >= 1:
        return True
    digest = hashlib.blake2b(f"{queue_id}\n{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64
