"""Full-text query terms on PostgreSQL: any of the query's words, without those most chunks
contain when rarer ones remain.

`ts_rank_cd` has no inverse document frequency and scores every chunk the `tsquery` matches, so
an OR of a question's words, some of them in most chunks, both ranks poorly and costs a score for
nearly every chunk. Leaving out the lexemes PostgreSQL's own statistics (`pg_stats` of the
`tsv` column, kept by ANALYZE/autovacuum) put in more than `COMMON_SHARE` of the rows fixes
both: at 20k chunks 171 -> 10 ms and recall@5 0.84 -> 0.96 (docs/benchmarks.md). Without
statistics yet (a fresh table) every word stays.
"""

from __future__ import annotations

import re
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

COMMON_SHARE = 0.05
STATS_TTL_S = 60.0
MAX_WORDS = 64
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(query: str) -> list[str]:
    """The query's distinct words, lower-cased (words only: no tsquery operator survives)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_WORDS]


def tsquery(query: str) -> str:
    """Any of the query's words, as `to_tsquery` text."""
    return " | ".join(query_words(query))


class LexemeShares:
    """The share of rows holding each common lexeme, from `pg_stats`, refreshed every minute."""

    def __init__(self) -> None:
        self._shares: dict[str, float] = {}
        self._loaded = -STATS_TTL_S

    async def shares(self, conn: AsyncConnection) -> dict[str, float]:
        if time.monotonic() - self._loaded >= STATS_TTL_S:
            row = (
                await conn.execute(
                    text(
                        "SELECT most_common_elems::text::text[], most_common_elem_freqs "
                        "FROM pg_stats WHERE schemaname = current_schema() "
                        "AND tablename = 'rag_chunks' AND attname = 'tsv'"
                    )
                )
            ).first()
            elems, freqs = (row[0], row[1]) if row is not None else (None, None)
            self._shares = dict(zip(elems or [], freqs or [], strict=False))
            self._loaded = time.monotonic()
        return self._shares

    async def uncommon(self, conn: AsyncConnection, words: list[str]) -> list[str]:
        """`words` without those whose lexemes are in more than `COMMON_SHARE` of the rows;
        the rarest is kept when all are common. Words with no lexeme (stop words) leave too."""
        shares = await self.shares(conn)
        if len(words) < 2 or not shares:
            return words
        rows = await conn.execute(
            text(
                "SELECT w, tsvector_to_array(to_tsvector('english', w)) "
                "FROM unnest(CAST(:w AS text[])) AS w"
            ),
            {"w": words},
        )
        share = {
            str(w): max((shares.get(lex, 0.0) for lex in lexemes), default=0.0)
            for w, lexemes in rows
            if lexemes
        }
        if not share:
            return words
        kept = [w for w in words if w in share and share[w] <= COMMON_SHARE]
        return kept or [min(share, key=lambda w: share[w])]
