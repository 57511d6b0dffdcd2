"""Storage: records, schema, migrations, repositories and the background writer."""

from opsgate.store.records import SpanRecord, TraceRecord

__all__ = ["SpanRecord", "TraceRecord"]
