"""The embedded store's HNSW path (bases above the exact-search size): another process's writes
are caught up, replaced chunks never come back, the ACL still yields k visible hits when most
candidates are hidden, and the index survives a restart from its saved file."""

from __future__ import annotations

from pathlib import Path

from opsgate.config.rag import RagConfig
from opsgate.rag.ingest import Upload
from opsgate.rag.service import KnowledgeService
from opsgate.rag.store.sqlite import SqliteStore
from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.migrate import upgrade
from tests.rag.conftest import ADMIN, MEMBER_A

CONFIG = RagConfig(chunk_tokens=32, chunk_overlap=0)


def _docs(n: int, prefix: str, acl: tuple[str, ...] = ()) -> list[Upload]:
    return [
        Upload(
            f"{prefix}{i:04d}.txt", f"note {i} about topic{i % 17} and item{i}".encode(), acl=acl
        )
        for i in range(n)
    ]


async def test_hnsw_path_across_two_stores_and_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await upgrade(url)
    engines = [make_engine(url), make_engine(url)]
    writer = KnowledgeService(SqliteStore(engines[0], tmp_path / "w", exact_below=50), CONFIG)
    reader = KnowledgeService(SqliteStore(engines[1], tmp_path / "r", exact_below=50), CONFIG)
    try:
        await writer.start(), await reader.start()
        await writer.create(ADMIN, "kb")
        await writer.ingest(ADMIN, "kb", _docs(120, "open/"))
        await writer.ingest(ADMIN, "kb", _docs(200, "secret/", acl=("team:team-b",)))
        options = reader.options(5, mode="vector")
        _, found = await reader.search(ADMIN, "kb", "note 7 about topic7 and item7", options)
        assert found.hits[0].path == "open/0007.txt"
        # team A sees only the open documents, still five of them
        _, seen = await reader.search(MEMBER_A, "kb", "item150 topic14", options)
        assert len(seen.hits) == 5 and all(h.path.startswith("open/") for h in seen.hits)
        # a replaced document: the reader's index holds its old chunk id, which finds no row
        new = Upload("open/0007.txt", b"completely different words here")
        await writer.ingest(ADMIN, "kb", [new])
        _, again = await reader.search(ADMIN, "kb", "note 7 about topic7 and item7", options)
        assert [h.version for h in again.hits if h.path == "open/0007.txt"] in ([], [2])
        _, fresh = await reader.search(ADMIN, "kb", "completely different words", options)
        assert fresh.hits[0].path == "open/0007.txt" and fresh.hits[0].version == 2
        await reader.store.aclose()  # saves the index
        restarted = SqliteStore(engines[1], tmp_path / "r", exact_below=50)
        again_service = KnowledgeService(restarted, CONFIG)
        await again_service.start()
        _, after = await again_service.search(ADMIN, "kb", "completely different words", options)
        assert after.hits[0].path == "open/0007.txt"
    finally:
        for engine in engines:
            await dispose_engine(engine)
