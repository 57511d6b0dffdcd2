"""The knowledge stores through the service: ingestion, dedup, replacement, deletion, hybrid
ranking on a fixed corpus, filters, ACL isolation, erasure. Runs on every store."""

from __future__ import annotations

import asyncio

import pytest

from opsgate.errors import NotFoundError, OpsgateError, PermissionDeniedError
from opsgate.rag.ingest import Upload
from opsgate.rag.model import Filters
from opsgate.rag.service import KnowledgeService
from tests.rag.conftest import ADMIN, MEMBER_A, TEAM_A, TEAM_B

CORPUS = {
    "pets/cats.md": "# Cats\n\nCats are small carnivorous mammals kept as pets. A cat purrs.",
    "pets/dogs.md": "# Dogs\n\nDogs are loyal companions; a dog barks and fetches sticks.",
    "space/mars.md": "# Mars\n\nMars is the red planet, fourth from the sun, with two moons.",
    "space/moon.md": "# The Moon\n\nThe Moon orbits the Earth; astronauts landed on it in 1969.",
    "food/bread.md": "# Bread\n\nBread is baked from flour, water and yeast in a hot oven.",
}


async def _ingest(service: KnowledgeService, who=TEAM_A, name: str = "kb", **kw: object) -> None:
    uploads = [Upload(path=p, data=t.encode(), **kw) for p, t in CORPUS.items()]  # type: ignore[arg-type]
    results = await service.ingest(who, name, uploads)
    assert {r.status for r in results} == {"added"}


async def _paths(service: KnowledgeService, who, query: str, name: str = "kb", **kw: object):
    options = service.options(5, **kw)  # type: ignore[arg-type]
    _, found = await service.search(who, name, query, options)
    return [h.path for h in found.hits]


async def test_hybrid_ranking_on_a_fixed_corpus(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    await _ingest(service)
    assert (await _paths(service, TEAM_A, "which planet is red?"))[0] == "space/mars.md"
    assert (await _paths(service, TEAM_A, "a dog that barks", mode="bm25"))[0] == "pets/dogs.md"
    assert (await _paths(service, TEAM_A, "astronauts landed", mode="vector"))[0] == (
        "space/moon.md"
    )
    top = await _paths(service, TEAM_A, "flour yeast oven bread")
    assert top[0] == "food/bread.md"
    _, found = await service.search(TEAM_A, "kb", "red planet mars", service.options(3))
    hit = found.hits[0]
    assert set(hit.retrievers) == {"bm25", "vector"} and hit.ranks == {"bm25": 1, "vector": 1}
    assert CORPUS["space/mars.md"][hit.start : hit.end] == hit.text
    assert hit.heading_text == "Mars"


async def test_reingest_unchanged_is_a_noop_and_a_change_replaces(
    service: KnowledgeService,
) -> None:
    await service.create(TEAM_A, "kb")
    await _ingest(service)
    again = await service.ingest(
        TEAM_A, "kb", [Upload("pets/cats.md", CORPUS["pets/cats.md"].encode())]
    )
    assert [r.status for r in again] == ["unchanged"]
    changed = "# Cats\n\nCats sleep sixteen hours a day in sunny windows."
    done = await service.ingest(TEAM_A, "kb", [Upload("pets/cats.md", changed.encode())])
    assert [r.status for r in done] == ["replaced"]
    assert (await _paths(service, TEAM_A, "sleep sixteen hours"))[0] == "pets/cats.md"
    assert "pets/cats.md" not in await _paths(service, TEAM_A, "purrs", mode="bm25")
    docs = await service.documents(TEAM_A, "kb")
    cats = next(d for d in docs if d.path == "pets/cats.md")
    assert cats.version == 2 and len(docs) == 5


async def test_delete_document_and_base(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    await _ingest(service)
    assert await service.delete_document(TEAM_A, "kb", "space/mars.md")
    assert not await service.delete_document(TEAM_A, "kb", "space/mars.md")
    assert "space/mars.md" not in await _paths(service, TEAM_A, "red planet mars")
    await service.delete(TEAM_A, "kb")
    with pytest.raises(NotFoundError):
        await service.find(TEAM_A, "kb")


async def test_filters_by_path_tag_and_document(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    await _ingest(service)
    await service.ingest(
        TEAM_A, "kb", [Upload("x/mars-tagged.md", b"Mars rovers", tags=("rover",))]
    )
    in_pets = await _paths(service, TEAM_A, "red planet", filters=Filters(paths=("pets/",)))
    assert in_pets and all(p.startswith("pets/") for p in in_pets)
    tagged = await _paths(service, TEAM_A, "mars", filters=Filters(tags=("rover",)))
    assert tagged == ["x/mars-tagged.md"]


async def test_team_b_never_sees_team_a(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    await _ingest(service)
    with pytest.raises(NotFoundError):
        await service.search(TEAM_B, "kb", "mars", service.options(5))
    assert [b.name for b in await service.bases(TEAM_B)] == []
    # a base of no team (admin-made) with documents listed for team A only
    await service.create(ADMIN, "shared")
    await service.ingest(ADMIN, "shared", [Upload("open.md", b"Mars open facts")])
    await service.ingest(
        ADMIN, "shared", [Upload("secret.md", b"Mars secret plans", acl=("team:team-a",))]
    )
    for mode in ("hybrid", "bm25", "vector"):
        seen_b = await _paths(service, TEAM_B, "mars secret plans", name="shared", mode=mode)
        assert "secret.md" not in seen_b and "open.md" in seen_b
        seen_a = await _paths(service, MEMBER_A, "mars secret plans", name="shared", mode=mode)
        assert seen_a[0] == "secret.md"
    listed = [d.path for d in await service.documents(TEAM_B, "shared")]
    assert listed == ["open.md"]
    with pytest.raises(PermissionDeniedError):
        await service.ingest(TEAM_B, "shared", [Upload("x.md", b"x")])


async def test_acl_entries_by_user(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    await service.ingest(
        TEAM_A, "kb", [Upload("mine.md", b"carol's notes on mars", acl=("user:carol",))]
    )
    assert await _paths(service, MEMBER_A, "notes mars") == ["mine.md"]
    assert await _paths(service, TEAM_A, "notes mars") == []  # alice is not listed


async def test_bad_input(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    with pytest.raises(OpsgateError) as exc:
        await service.create(TEAM_A, "kb")
    assert exc.value.status == 409
    for bad in ("", "a b", "../x", "x" * 65):
        with pytest.raises(OpsgateError) as exc:
            await service.create(TEAM_A, bad)
        assert exc.value.status == 400
    with pytest.raises(OpsgateError) as exc:
        await service.search(TEAM_A, "kb", "   ", service.options(5))
    assert exc.value.status == 400
    with pytest.raises(OpsgateError) as exc:
        service.options(10_000)
    assert exc.value.status == 400
    results = await service.ingest(
        TEAM_A,
        "kb",
        [
            Upload("ok.txt", b"fine text"),
            Upload("bad.pdf", b"%PDF-1.4 this is not a pdf"),
            Upload("bin.txt", b"\x00\x01\x02"),
            Upload("x.docx", b"PK\x03\x04"),
        ],
    )
    status = {r.path: r.status for r in results}
    assert status == {
        "ok.txt": "added",
        "bad.pdf": "failed",
        "bin.txt": "failed",
        "x.docx": "failed",
    }
    assert all(r.error for r in results if r.status == "failed")


async def test_concurrent_replace_and_search_see_one_version(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    versions = [" ".join([f"version{v} alpha{v} beta{v}."] * 30) for v in range(6)]

    async def writer() -> None:
        for text in versions:
            await service.ingest(TEAM_A, "kb", [Upload("doc.md", text.encode())])

    async def reader() -> None:
        for _ in range(30):
            _, found = await service.search(
                TEAM_A, "kb", "version alpha beta", service.options(20, mode="bm25")
            )
            seen = {h.version for h in found.hits}
            assert len(seen) <= 1, seen
            await asyncio.sleep(0)

    await asyncio.gather(writer(), reader(), reader())


async def test_erasure_by_end_user(service: KnowledgeService) -> None:
    await service.create(TEAM_A, "kb")
    await service.ingest(TEAM_A, "kb", [Upload("u1.md", b"user one's mars diary", end_user="u1")])
    await service.ingest(TEAM_A, "kb", [Upload("u2.md", b"user two's mars diary", end_user="u2")])
    exported = await service.store.export_end_user("u1")
    assert [e["path"] for e in exported] == ["u1.md"]
    counts = await service.store.erase_end_user("u1")
    assert counts["rag_documents"] == 1 and counts["rag_chunks"] >= 1
    assert await _paths(service, TEAM_A, "mars diary") == ["u2.md"]
    assert await service.store.export_end_user("u1") == []
