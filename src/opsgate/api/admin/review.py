"""Admin API of review queues (`/admin/v1/review/queues`): queues, their progress, and the
reviewer's loop (next item, label, skip, undo).

Thin handlers over `ReviewService` (feedback/review/service.py), which decides who may see and
change which queue: `reviews:manage` for queue changes, `traces:review` to review (members only
on queues that name them). A queue the caller may not review answers 404. An item's bodies come
with `include_bodies=true` for callers holding `traces:read_bodies`, read through the audited
body reader.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from opsgate.access.permissions import Permission, require
from opsgate.api.responses import JSONResponse
from opsgate.api.trace_json import trace_summary
from opsgate.errors import BadRequestError
from opsgate.feedback.datasets.rows import from_bodies
from opsgate.feedback.holders import score_json
from opsgate.feedback.review.model import Item, Progress, QueueInfo
from opsgate.feedback.review.rules import QueueCreate, QueueUpdate
from opsgate.feedback.review.service import Labels, ReviewService
from opsgate.web.admin import AdminCall, admin_route
from opsgate.web.queries import flag

P = Permission
BASE = "/admin/v1/review/queues"
ITEM = BASE + "/{queue}/items/{trace_id:str}"


class LabelBody(BaseModel):
    """A reviewer's labels: metric values, and optionally a comment and a better answer."""

    model_config = ConfigDict(extra="forbid")

    scores: dict[str, bool | float | str] = Field(min_length=1, max_length=32)
    comment: str | None = None
    correction: str | dict[str, Any] | None = Field(
        default=None, description="the better answer: text or an assistant message"
    )


def _review(call: AdminCall) -> ReviewService:
    service: ReviewService = call.gateway.review
    return service


def queue_json(service: ReviewService, queue: QueueInfo, progress: Progress | None) -> Any:
    data: dict[str, Any] = {
        "object": "review.queue",
        "id": queue.id,
        "name": queue.name,
        "team_id": queue.team_id,
        "description": queue.description,
        "rule": queue.filter.model_dump(mode="json", exclude_defaults=True),
        "sample": queue.sample,
        "metrics": service.metrics_of(queue),
        "reviewers": list(queue.reviewers),
        "lease_seconds": queue.lease_seconds,
        "since": queue.since,
        "filled_at": queue.filled_at,
        "created_at": queue.created_at,
        "created_by": queue.created_by,
    }
    if progress is not None:
        data["progress"] = {
            "total": progress.total,
            "done": progress.done,
            "pending": progress.pending,
            "in_progress": progress.in_progress,
            "labelled_by": progress.labelled_by,
            "skipped_by": progress.skipped_by,
        }
    return data


async def _item_json(call: AdminCall, queue: QueueInfo, item: Item | None) -> Any:
    if item is None:
        return {"object": "review.item", "queue_id": queue.id, "item": None}
    data: dict[str, Any] = {
        "object": "review.item",
        "queue_id": queue.id,
        "trace_id": item.trace_id,
        "state": item.state,
        "assigned_to": item.assigned_to,
        "lease_until": item.lease_until,
        "done_by": item.done_by,
        "done_at": item.done_at,
    }
    traces = call.gateway.traces
    record = await traces.get(item.trace_id) if traces is not None else None
    data["trace"] = trace_summary(record) if record is not None else None
    scores = await call.gateway.feedback.store.for_traces([item.trace_id])
    data["scores"] = [score_json(s) for s in scores]
    if record is not None and flag(call.query, "include_bodies"):
        require(call.who, P.TRACES_READ_BODIES)
        request, response = await call.gateway.bodies.read_or_refuse(record, call.actor)
        content = from_bodies(request, response) if request is not None else None
        data["conversation"] = (
            None
            if content is None
            else {"messages": content.messages, "tools": content.tools, "output": content.output}
        )
    return data


async def list_queues(call: AdminCall) -> Response:
    """The review queues you may review, with their progress"""
    service = _review(call)
    queues = await service.visible(call.who)
    data = []
    for queue in queues:
        data.append(queue_json(service, queue, await service.store.progress(queue.id, time.time())))
    return JSONResponse({"object": "list", "data": data, "next_cursor": None})


async def create_queue(call: AdminCall) -> Response:
    """Create a review queue (a rule over traces and scores) and fill it"""
    service = _review(call)
    queue = await service.create(call.who, call.body, call.actor)
    return JSONResponse(queue_json(service, queue, await service.progress(queue)), 201)


async def get_queue(call: AdminCall) -> Response:
    """A review queue with its progress and per-reviewer counts"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    return JSONResponse(queue_json(service, queue, await service.progress(queue)))


async def update_queue(call: AdminCall) -> Response:
    """Change a queue's description, metrics, reviewers or lease"""
    service = _review(call)
    queue = await service.update(call.who, call.path("queue"), call.body)
    return JSONResponse(queue_json(service, queue, None))


async def delete_queue(call: AdminCall) -> Response:
    """Delete a queue and its items (the labels stay in the score store)"""
    queue = await _review(call).delete(call.who, call.path("queue"))
    return JSONResponse({"object": "review.queue", "id": queue.id, "deleted": True})


async def fill_queue(call: AdminCall) -> Response:
    """Look for new matching traces now"""
    service = _review(call)
    queue, added = await service.refill(call.who, call.path("queue"))
    body = queue_json(service, queue, await service.store.progress(queue.id, time.time()))
    body["added"] = added
    return JSONResponse(body)


async def next_item(call: AdminCall) -> Response:
    """The item you hold in this queue, else claim the next one (`item: null` when none)"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    return JSONResponse(await _item_json(call, queue, await service.next(call.who, queue)))


async def get_item(call: AdminCall) -> Response:
    """One item of the queue, with its trace and scores"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    item = await service.item(queue, call.path("trace_id"))
    return JSONResponse(await _item_json(call, queue, item))


async def list_items(call: AdminCall) -> Response:
    """The queue's items, oldest trace first (`state`: pending or done)"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    state = call.query.get("state")
    if state not in (None, "pending", "done"):
        raise BadRequestError("state must be pending or done", param="state")
    limit = _limit(call.query.get("limit"))
    after = _cursor(call.query.get("cursor"))
    items = await service.store.items(queue.id, state, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    cursor = f"{items[-1].started_at!r}|{items[-1].trace_id}" if more and items else None
    data = [
        {
            "object": "review.item",
            "trace_id": i.trace_id,
            "state": i.state,
            "started_at": i.started_at,
            "assigned_to": i.assigned_to,
            "lease_until": i.lease_until,
            "done_by": i.done_by,
            "done_at": i.done_at,
        }
        for i in items
    ]
    return JSONResponse({"object": "list", "data": data, "next_cursor": cursor})


def _limit(raw: str | None) -> int:
    try:
        value = int(raw) if raw is not None else 50
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise BadRequestError("limit must be between 1 and 1000", param="limit")
    return value


def _cursor(raw: str | None) -> tuple[float, str] | None:
    if raw is None:
        return None
    started, _, trace_id = raw.partition("|")
    try:
        return float(started), trace_id
    except ValueError:
        raise BadRequestError("invalid cursor: pass next_cursor", param="cursor") from None


async def label_item(call: AdminCall) -> Response:
    """Label an item (scores with source `reviewer`, the correction with the first) and mark
    it done"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    body: LabelBody = call.body
    labels = Labels(body.scores, body.comment, body.correction)
    written = await service.label(call.who, queue, call.path("trace_id"), labels)
    return JSONResponse(
        {
            "object": "review.label",
            "queue_id": queue.id,
            "trace_id": call.path("trace_id"),
            "scores": [score_json(s) for s in written],
        },
        201,
    )


async def skip_item(call: AdminCall) -> Response:
    """Skip an item: back to the other reviewers, never offered to you again (until undone)"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    await service.skip(call.who, queue, call.path("trace_id"))
    return JSONResponse({"object": "review.skip", "queue_id": queue.id, "skipped": True})


async def undo(call: AdminCall) -> Response:
    """Undo your latest label or skip in this queue; the item is yours again"""
    service = _review(call)
    queue = await service.resolve(call.who, call.path("queue"))
    action, item, mine = await service.undo(call.who, queue)
    body = await _item_json(call, queue, item)
    body.update({"undone": action, "assigned_to_you": mine})
    return JSONResponse(body)


Q = "/{queue}"
_ITEM_QUERY = ("include_bodies",)
routes = [
    admin_route("GET", BASE, list_queues, P.TRACES_REVIEW),
    admin_route("POST", BASE, create_queue, P.REVIEWS_MANAGE, body=QueueCreate),
    admin_route("GET", BASE + Q, get_queue, P.TRACES_REVIEW),
    admin_route("PATCH", BASE + Q, update_queue, P.REVIEWS_MANAGE, body=QueueUpdate),
    admin_route("DELETE", BASE + Q, delete_queue, P.REVIEWS_MANAGE),
    admin_route("POST", BASE + Q + "/fill", fill_queue, P.REVIEWS_MANAGE),
    admin_route("POST", BASE + Q + "/next", next_item, P.TRACES_REVIEW, query=_ITEM_QUERY),
    admin_route(
        "GET", BASE + Q + "/items", list_items, P.TRACES_REVIEW, query=("state", "limit", "cursor")
    ),
    admin_route("GET", ITEM, get_item, P.TRACES_REVIEW, query=_ITEM_QUERY),
    admin_route("POST", ITEM + "/label", label_item, P.TRACES_REVIEW, body=LabelBody),
    admin_route("POST", ITEM + "/skip", skip_item, P.TRACES_REVIEW),
    admin_route("POST", BASE + Q + "/undo", undo, P.TRACES_REVIEW, query=_ITEM_QUERY),
]
