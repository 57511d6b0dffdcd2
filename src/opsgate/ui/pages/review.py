"""Review: the queues a reviewer may work on, and one item at a time: the trace's conversation
(when the reviewer may read bodies: an audited read), its scores so far, a control per metric,
a comment and a correction editor; skip and undo.

Everything goes through `ReviewService` (feedback/review/service.py), as the admin API does: the
same grants (a member reviews only queues naming them), claims and leases, the same labels in
the score store (source `reviewer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.errors import OpsgateError
from opsgate.feedback.datasets.rows import RowContent, from_bodies
from opsgate.feedback.review.model import Item, QueueInfo
from opsgate.feedback.review.service import ReviewService, reviewer_id
from opsgate.trace import TraceRecord
from opsgate.ui.registry import Page
from opsgate.ui.review_form import controls, parse_labels
from opsgate.ui.visit import Visit, view
from opsgate.web.audit import actor_of

P = Permission


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    text: str


def _service(visit: Visit) -> ReviewService:
    service: ReviewService = visit.gateway.review
    return service


def _root(visit: Visit) -> str:
    root: str = visit.request.scope.get("root_path", "")
    return root


def _to(visit: Visit, path: str) -> Response:
    return RedirectResponse(f"{_root(visit)}{path}", status_code=303)


async def _queue(visit: Visit) -> QueueInfo:
    return await _service(visit).resolve(visit.principal, visit.request.path_params["queue"])


@view(P.TRACES_REVIEW)
async def queues(visit: Visit) -> Response:
    service = _service(visit)
    found = await service.visible(visit.principal)
    rows = [(q, await service.progress(q)) for q in found]
    return visit.render("review.html", {"queues": rows, "me": reviewer_id(visit.principal)})


@view(P.TRACES_REVIEW)
async def queue_page(visit: Visit) -> Response:
    service = _service(visit)
    queue = await _queue(visit)
    progress = await service.progress(queue)
    me = reviewer_id(visit.principal)
    return visit.render(
        "review_queue.html",
        {
            "queue": queue,
            "progress": progress,
            "me": me,
            "metrics": service.metrics_of(queue),
            "empty": visit.request.query_params.get("empty") == "1",
        },
    )


async def _next(visit: Visit, queue: QueueInfo) -> Response:
    item = await _service(visit).next(visit.principal, queue)
    if item is None:
        return _to(visit, f"/review/{queue.id}?empty=1")
    return _to(visit, f"/review/{queue.id}/items/{item.trace_id}")


@view(P.TRACES_REVIEW, audit="review.next")
async def next_item(visit: Visit) -> Response:
    return await _next(visit, await _queue(visit))


def _turns(content: RowContent | None) -> list[Turn]:
    if content is None:
        return []
    turns = [Turn(str(m.get("role", "?")), _text(m)) for m in content.messages]
    if content.output is not None:
        turns.append(Turn("assistant", _text(content.output)))
    return turns


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(
            str(p.get("text", "")) if p.get("type") == "text" else f"[{p.get('type', 'part')}]"
            for p in content
            if isinstance(p, dict)
        )
    else:
        text = ""
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {}) if isinstance(call, dict) else {}
        text += f"\n[calls {fn.get('name', '?')}({fn.get('arguments', '')})]"
    return text.strip()


async def _conversation(visit: Visit, record: TraceRecord) -> list[Turn] | None:
    """The conversation, read through the audited body reader; None when not shown."""
    if not visit.may(P.TRACES_READ_BODIES) or record.request_body is None:
        return None
    request, response = await visit.gateway.bodies.read_or_refuse(
        record, actor_of(visit.request.scope)
    )
    return _turns(from_bodies(request, response) if request is not None else None)


async def _item_page(
    visit: Visit, queue: QueueInfo, item: Item, *, error: str | None = None, status: int = 200
) -> Response:
    service = _service(visit)
    traces = visit.gateway.traces
    record = await traces.get(item.trace_id) if traces is not None else None
    scores = await visit.gateway.feedback.store.for_traces([item.trace_id])
    declared = visit.gateway.runtime.config.feedback.metrics
    return visit.render(
        "review_item.html",
        {
            "queue": queue,
            "item": item,
            "t": record,
            "scores": scores,
            "turns": await _conversation(visit, record) if record is not None else None,
            "has_bodies": record is not None and record.request_body is not None,
            "controls": controls(service.metrics_of(queue), declared),
            "progress": await service.store.progress(queue.id, time.time()),
            "mine": item.assigned_to == reviewer_id(visit.principal),
            "form": visit.form,
            "error": error,
        },
        status=status,
    )


@view(P.TRACES_REVIEW)
async def item_page(visit: Visit) -> Response:
    queue = await _queue(visit)
    item = await _service(visit).item(queue, visit.request.path_params["trace_id"])
    return await _item_page(visit, queue, item)


@view(P.TRACES_REVIEW, audit="review.label")
async def label(visit: Visit) -> Response:
    service, queue = _service(visit), await _queue(visit)
    item = await service.item(queue, visit.request.path_params["trace_id"])
    declared = visit.gateway.runtime.config.feedback.metrics
    try:
        labels = parse_labels(visit.form, controls(service.metrics_of(queue), declared))
        await service.label(visit.principal, queue, item.trace_id, labels)
    except OpsgateError as exc:
        if exc.status >= 500:
            raise
        return await _item_page(visit, queue, item, error=exc.message, status=exc.status)
    return await _next(visit, queue)


@view(P.TRACES_REVIEW, audit="review.skip")
async def skip(visit: Visit) -> Response:
    service, queue = _service(visit), await _queue(visit)
    await service.skip(visit.principal, queue, visit.request.path_params["trace_id"])
    return await _next(visit, queue)


@view(P.TRACES_REVIEW, audit="review.undo")
async def undo(visit: Visit) -> Response:
    queue = await _queue(visit)
    _, item, _ = await _service(visit).undo(visit.principal, queue)
    return _to(visit, f"/review/{queue.id}/items/{item.trace_id}")


ITEM = "/review/{queue:str}/items/{trace_id:str}"
PAGE = Page(
    "review",
    "Review",
    "/review",
    any_of=(P.TRACES_REVIEW,),
    routes=(
        Route("/review", queues, methods=["GET"]),
        Route("/review/{queue:str}", queue_page, methods=["GET"]),
        Route("/review/{queue:str}/next", next_item, methods=["POST"]),
        Route("/review/{queue:str}/undo", undo, methods=["POST"]),
        Route(ITEM, item_page, methods=["GET"]),
        Route(ITEM + "/label", label, methods=["POST"]),
        Route(ITEM + "/skip", skip, methods=["POST"]),
    ),
    order=25,
)
