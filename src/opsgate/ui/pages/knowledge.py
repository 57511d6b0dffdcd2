"""Knowledge bases: the list (documents, chunks, embedder, team) and, per base, its documents
and a search playground that shows each hit's fused score, which retriever found it at which
rank, and the chunk's text. Searches run through `KnowledgeService` as the logged-in principal,
so the playground sees exactly what that key's chat requests would retrieve."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from opsgate.access.permissions import Permission
from opsgate.errors import OpsgateError
from opsgate.rag.retrieve import Mode
from opsgate.rag.service import KnowledgeService
from opsgate.ui.registry import Page
from opsgate.ui.visit import Visit, view

P = Permission
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "vector")


def _service(visit: Visit) -> KnowledgeService:
    service: KnowledgeService = visit.gateway.knowledge
    return service


@view(P.KNOWLEDGE_READ)
async def knowledge_list(visit: Visit) -> Response:
    bases = await _service(visit).bases(visit.principal)
    return visit.render("knowledge_bases.html", {"bases": bases})


@view(P.KNOWLEDGE_READ)
async def knowledge_detail(visit: Visit) -> Response:
    service = _service(visit)
    name = visit.request.path_params["name"]
    team = visit.request.query_params.get("team_id")
    base = await service.find(visit.principal, name, team)
    documents = await service.documents(visit.principal, name, team_id=base.team_id, limit=200)
    search = await _search(visit, service, name, base.team_id)
    context = {"base": base, "documents": documents, **search, "modes": MODES}
    return visit.render("knowledge_base.html", context)


async def _search(visit: Visit, service: KnowledgeService, name: str, team: str) -> dict[str, Any]:
    params = visit.request.query_params
    query = (params.get("q") or "").strip()
    mode = params.get("mode") or "hybrid"
    mode_checked: Mode = mode if mode in MODES else "hybrid"
    top_k = params.get("top_k") or "5"
    found: dict[str, Any] = {
        "q": query,
        "mode": mode_checked,
        "top_k": top_k,
        "error": None,
        "hits": None,
        "timings": {},
    }
    if not query:
        return found
    try:
        options = service.options(int(top_k) if top_k.isdigit() else -1, mode=mode_checked)
        _, retrieval = await service.search(visit.principal, name, query, options, team)
    except OpsgateError as exc:
        return {**found, "error": exc.message}
    return {**found, "hits": retrieval.hits, "timings": retrieval.timings_ms}


PAGE = Page(
    "knowledge",
    "Knowledge bases",
    "/knowledge-bases",
    any_of=(P.KNOWLEDGE_READ,),
    routes=(
        Route("/knowledge-bases", knowledge_list),
        Route("/knowledge-bases/{name}", knowledge_detail),
    ),
    order=38,
)
