"""Storage: records, schema, migrations, repositories and the background writer."""

from opsgate.store.db import dispose_engine, make_engine
from opsgate.store.errors import RecordRejectedError, StoreError, StoreUnavailableError
from opsgate.store.journal import Journal, JournalLockedError, default_journal_path
from opsgate.store.memory import MemoryTraceStore
from opsgate.store.queries import InvalidCursorError, InvalidQueryError, TracePage, TraceQuery
from opsgate.store.repository import TraceReader, TraceStore
from opsgate.store.sql import SqlTraceStore
from opsgate.store.usage import UsageDimension, UsageQuery, UsageRow
from opsgate.store.writer import TraceWriter, WriterStats
from opsgate.trace import SpanRecord, TraceRecord

__all__ = [
    "InvalidCursorError",
    "InvalidQueryError",
    "Journal",
    "JournalLockedError",
    "MemoryTraceStore",
    "RecordRejectedError",
    "SpanRecord",
    "SqlTraceStore",
    "StoreError",
    "StoreUnavailableError",
    "TracePage",
    "TraceQuery",
    "TraceReader",
    "TraceRecord",
    "TraceStore",
    "TraceWriter",
    "UsageDimension",
    "UsageQuery",
    "UsageRow",
    "WriterStats",
    "default_journal_path",
    "dispose_engine",
    "make_engine",
]
