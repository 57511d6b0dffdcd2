"""Models: every deployment of every model group with its live health as this replica sees it
(circuit, availability, in-flight, moving averages) beside the stored latency and error
figures of the chosen range (usage rollups grouped by deployment, in the caller's scope).
A local (`llamacpp`) deployment also shows its GGUF file: path, size on disk, quantisation and
concurrency limits (`ui.local_models`)."""

from __future__ import annotations

import time

from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.access.scoping import scope_usage_query
from opsgate.store.usage import UsageQuery
from opsgate.ui.local_models import local_model, size_text
from opsgate.ui.registry import Page
from opsgate.ui.usage_charts import ONE_BUCKET, WINDOWS, window_from
from opsgate.ui.visit import Visit, view

P = Permission
DEFAULT_WINDOW = "1h"


@view(P.DEPLOYMENTS_READ)
async def models_page(visit: Visit) -> Response:
    window = window_from(visit, DEFAULT_WINDOW)
    stats = {}
    if visit.may(P.USAGE_READ) and visit.gateway.traces is not None:
        since, until = window.bounds(time.time())
        query = UsageQuery(since, until, ONE_BUCKET, ("deployment",))
        rows = await visit.trace_store().usage(scope_usage_query(visit.principal, query))
        stats = {row.group.get("deployment", ""): row for row in rows}
    groups = sorted(visit.gateway.model_groups.values(), key=lambda g: g.name)
    local = {}
    for group in groups:
        for deployment in group.deployments:
            found = await local_model(deployment.config)
            if found is not None:
                local[deployment.id] = found
    context = {
        "groups": groups,
        "stats": stats,
        "local": local,
        "size_text": size_text,
        "windows": WINDOWS.values(),
        "window": window,
    }
    return visit.render("models.html", context)


PAGE = Page(
    "models",
    "Models",
    "/models",
    any_of=(P.DEPLOYMENTS_READ,),
    routes=(Route("/models", models_page, methods=["GET"]),),
    order=40,
)
