"""The embedded store's full-text match leaves out query terms found in most chunks when rarer
ones remain (their BM25 weight is small; they made nearly every chunk a match to score), keeps
the rarest when all are common, and falls back to every term when the rare ones find too few."""

from __future__ import annotations

from pathlib import Path

from opsgate.config.rag import RagConfig
from opsgate.rag.ingest import Upload
from opsgate.rag.store.sqlite import SqliteStore
from tests.rag.conftest import TEAM_A, sqlite_service


async def test_common_terms_leave_the_match_when_rarer_ones_remain(tmp_path: Path) -> None:
    config = RagConfig(chunk_tokens=64, chunk_overlap=8)
    async for service in sqlite_service(tmp_path, config):
        store = service.store
        assert isinstance(store, SqliteStore)
        await service.create(TEAM_A, "kb")
        docs = [
            Upload(f"d{i:02d}.txt", f"common words and lexicon{i % 10} item{i}".encode())
            for i in range(30)
        ]
        await service.ingest(TEAM_A, "kb", docs)
        assert await store._uncommon(['"common"', '"item7"']) == ['"item7"']
        assert await store._uncommon(['"common"', '"lexicon1"']) == ['"lexicon1"']
        assert await store._uncommon(['"common"', '"words"']) == ['"common"']  # all common
        top = service.options(3, mode="bm25")
        _, found = await service.search(TEAM_A, "kb", "common item7", top)
        assert [h.path for h in found.hits][:1] == ["d07.txt"] and len(found.hits) == 3
        _, wide = await service.search(TEAM_A, "kb", "common item7", service.options(20, mode="bm25"))
        assert wide.hits[0].path == "d07.txt" and len(wide.hits) == 20
