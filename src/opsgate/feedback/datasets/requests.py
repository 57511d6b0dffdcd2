"""What a caller sends to create or change a dataset (pydantic: unknown fields are refused).

```json
{"name": "support-good", "from_traces": [
   {"since": "7d", "model": "support-bot", "scores": [{"metric": "thumbs", "value": true}]},
   {"model": "support-bot", "corrected": true}]}
{"name": "reviewed", "from_queue": "thumbs-down"}
```
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from opsgate.errors import PermissionDeniedError
from opsgate.feedback.datasets.sources import MAX_ROWS
from opsgate.feedback.selection import TraceFilter

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Id = Annotated[str, Field(min_length=1, max_length=256)]
MAX_INLINE_ROWS = 1000
MAX_IDS = 10_000
DEFAULT_LIMIT = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowSources(_Strict):
    """Where new rows come from; every source given adds (each trace once)."""

    from_traces: list[TraceFilter] | None = Field(
        default=None, max_length=8, description="filters; a trace matching any of them is added"
    )
    from_queue: str | None = Field(
        default=None, description="a review queue (id or name): its labelled traces"
    )
    trace_ids: list[Id] | None = Field(default=None, max_length=MAX_IDS)
    rows: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_INLINE_ROWS,
        description="rows given inline, in the JSONL import's forms",
    )
    limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_ROWS, description="most traces taken (oldest first)"
    )

    @property
    def uses_traffic(self) -> bool:
        return bool(self.from_traces or self.from_queue or self.trace_ids)


class DatasetCreate(RowSources):
    name: Name
    description: str | None = Field(default=None, max_length=2000)
    team_id: str | None = Field(default=None, description="default: your team (admins: none)")


class DatasetRemove(_Strict):
    row_ids: list[Id] = Field(default_factory=list, max_length=MAX_IDS)
    trace_ids: list[Id] = Field(default_factory=list, max_length=MAX_IDS)


def in_team(flt: TraceFilter, team_id: str | None, i: int) -> TraceFilter:
    """The filter inside the dataset's team (403 when it names another)."""
    if team_id is None:
        return flt
    if flt.team_id not in (None, team_id):
        raise PermissionDeniedError(
            f"from_traces[{i}].team_id {flt.team_id!r} is outside the dataset's team ({team_id!r})",
            code="outside_scope",
            param=f"from_traces[{i}].team_id",
        )
    return flt.model_copy(update={"team_id": team_id})


def change_detail(req: RowSources, matched: int, truncated: bool) -> dict[str, Any]:
    """What a version records about where its rows came from."""
    detail: dict[str, Any] = {}
    if req.from_traces:
        detail["from_traces"] = [
            f.model_dump(mode="json", exclude_defaults=True) for f in req.from_traces
        ]
    if req.from_queue:
        detail["from_queue"] = req.from_queue
    if req.trace_ids:
        detail["trace_ids"] = len(req.trace_ids)
    if req.rows:
        detail["inline_rows"] = len(req.rows)
    if matched:
        detail["matched"] = matched
    if truncated:
        detail["truncated"] = True
    return detail
