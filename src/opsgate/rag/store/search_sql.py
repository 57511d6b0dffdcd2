"""The SQL every search statement shares, on both stores: the columns and joins a hit is read
from, the reader's ACL clause (embedded in every chunk-returning statement), the metadata
filters, and the `Hit` built from a row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsgate.rag.model import Filters, Hit, Reader, Retriever

HIT_COLUMNS = (
    "c.id AS chunk_id, c.document_id, d.path, d.title, c.seq, c.char_start, c.char_end, "
    "c.text, c.heading_text, d.version, c.vector"
)
"""The columns every search selects (chunks `c`, documents `d`, bases `kb`)."""
HIT_FROM = (
    "rag_chunks c JOIN rag_documents d ON d.id = c.document_id "
    "JOIN rag_knowledge_bases kb ON kb.id = c.kb_id"
)


def access_sql(reader: Reader, params: dict[str, Any]) -> str:
    """The reader's ACL as SQL over `kb` and `d` (binds added to `params`): the base is of the
    reader's team or of no team, and the document is open or lists one of the reader's
    entries. Admins see everything."""
    if reader.everything:
        return "1 = 1"
    params["acl_team"] = reader.team_id or ""
    params["acl_open"] = True
    names = []
    for i, entry in enumerate(reader.entries):
        params[f"acl_e{i}"] = entry
        names.append(f":acl_e{i}")
    listed = (
        "EXISTS (SELECT 1 FROM rag_document_acl a WHERE a.document_id = d.id "
        f"AND a.entry IN ({', '.join(names)}))"
    )
    team = "(kb.team_id = '' OR kb.team_id = :acl_team)"
    return f"{team} AND (d.acl_open = :acl_open OR {listed})"


def filter_sql(filters: Filters, params: dict[str, Any], tag_clause: str) -> str:
    """Metadata filters as SQL over `d`; `tag_clause` has `{name}` for one tag's bind."""
    parts: list[str] = []
    if filters.paths:
        ors = []
        for i, prefix in enumerate(filters.paths):
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params[f"f_path{i}"] = escaped + "%"
            ors.append(f"d.path LIKE :f_path{i} ESCAPE '\\'")
        parts.append("(" + " OR ".join(ors) + ")")
    for i, tag in enumerate(filters.tags):
        params[f"f_tag{i}"] = tag
        parts.append(tag_clause.format(name=f"f_tag{i}"))
    if filters.document_ids:
        names = []
        for i, doc_id in enumerate(filters.document_ids):
            params[f"f_doc{i}"] = doc_id
            names.append(f":f_doc{i}")
        parts.append(f"d.id IN ({', '.join(names)})")
    return " AND ".join(parts) if parts else "1 = 1"


def hit_of(row: Mapping[Any, Any], score: float, retriever: Retriever, rank: int) -> Hit:
    return Hit(
        chunk_id=int(row["chunk_id"]),
        document_id=row["document_id"],
        path=row["path"],
        title=row["title"],
        seq=row["seq"],
        start=row["char_start"],
        end=row["char_end"],
        text=row["text"],
        heading_text=row["heading_text"],
        score=score,
        retrievers=(retriever,),
        ranks={retriever: rank},
        vector=row.get("vector"),
        version=row["version"],
    )
