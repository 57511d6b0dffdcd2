"""What differs between SQLite and PostgreSQL, in one place: one small object per dialect.

Code that would branch on `engine.dialect.name == "postgresql"` asks `dialect_of(name)` instead:
the fastest bulk insert each driver has, a look-up by many keys, the conditional upsert, the
SQL functions whose names differ, JSON containment, and the advisory locks that PostgreSQL
needs where SQLite's single writer already serialises. A third dialect is one more subclass.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Double,
    Integer,
    LargeBinary,
    String,
    Table,
    cast,
    exists,
    func,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

Row = tuple[Any, ...]
Params = tuple[Any, ...] | list[Row]

SQLITE_MAX_VARIABLES = 32_766
"""SQLite's default bound on `?` parameters in one statement (3.32 and later)."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One driver call, as plain data: the same statement runs on an async connection
    (`store.batch.execute_async`) and on plain `sqlite3` in a thread (`store.offload`)."""

    sql: str
    params: Params
    """One tuple of parameters, or a list of row tuples for `executemany`."""
    returns: bool = False
    """Whether the caller wants the returned rows sent back."""


class Dialect(ABC):
    """The SQL one database speaks where SQLite and PostgreSQL differ."""

    name: ClassVar[str]
    least: ClassVar[str]
    """The scalar function of the smaller of two values (`least` / two-argument `min`)."""
    greatest: ClassVar[str]

    @abstractmethod
    def insert_rows(
        self, table: Table, rows: Sequence[Row], tail: str = "", *, returns: bool = False
    ) -> list[Statement]:
        """INSERT `rows` (tuples in column order) in the driver's fastest form, `tail` (an
        `ON CONFLICT ...` clause) appended; `returns`: the statements' rows are wanted."""

    @abstractmethod
    def insert_sql(self, table: Table, tail: str = "") -> str:
        """One INSERT statement's text: SQLite a row of `?` (for `executemany`), PostgreSQL
        the column arrays of `insert_rows`."""

    @abstractmethod
    def matching(self, select: str, column: str, keys: Sequence[str]) -> list[Statement]:
        """`select` restricted to the rows whose text `column` is one of `keys`."""

    @abstractmethod
    def insert(self, table: Table) -> Any:
        """The dialect's `INSERT` construct, which has `on_conflict_do_update/_nothing`."""

    @abstractmethod
    def json_has(self, column: Any, key: str, value: str) -> ColumnElement[bool]:
        """The JSON object in `column` has `key` set to the string `value`."""

    @abstractmethod
    def joined_text(self, column: Any, sep: str) -> ColumnElement[str]:
        """The aggregate that joins a group's text values with `sep`."""

    @abstractmethod
    def json_length(self, column: Any) -> ColumnElement[int]:
        """The number of elements of the JSON array in `column`."""

    @abstractmethod
    def floor(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """`value` rounded down to an integer (for non-negative values: epochs, periods)."""

    @abstractmethod
    def merge_sketch(self, old: str, new: str, scale: int) -> str:
        """SQL adding two latency sketch texts (`store.histogram`) bin by bin, built-in
        functions only; `old`, `new` are column references."""

    def transaction_lock(self, key: int, *, shared: bool = False) -> str | None:
        """SQL that takes the advisory lock `key` until the transaction ends, or None where
        writers are serialised anyway (SQLite: one writer holds the database's write lock)."""
        return None

    def lock_timeout(self, timeout: str) -> str | None:
        """SQL bounding how long this transaction waits for a lock, or None."""
        return None


class SQLite(Dialect):
    name = "sqlite"
    least, greatest = "min", "max"

    def insert_rows(
        self, table: Table, rows: Sequence[Row], tail: str = "", *, returns: bool = False
    ) -> list[Statement]:
        """Multi-row VALUES within SQLite's parameter bound: one `sqlite3_step` each, where
        `executemany` steps (and releases and retakes the GIL) once per row."""
        per_statement = max(1, SQLITE_MAX_VARIABLES // len(table.columns))
        statements = []
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = f"{_values(table, len(chunk))} {tail}".rstrip()
            params = tuple(itertools.chain.from_iterable(chunk))
            statements.append(Statement(sql, params, returns=returns))
        return statements

    def insert_sql(self, table: Table, tail: str = "") -> str:
        return f"{_values(table, 1)} {tail}".rstrip()

    def matching(self, select: str, column: str, keys: Sequence[str]) -> list[Statement]:
        """`column IN (...)`, in as many statements as the bound on variables needs."""
        statements = []
        for start in range(0, len(keys), SQLITE_MAX_VARIABLES):
            chunk = tuple(keys[start : start + SQLITE_MAX_VARIABLES])
            marks = ", ".join("?" * len(chunk))
            statements.append(Statement(f"{select} WHERE {column} IN ({marks})", chunk, True))
        return statements

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)

    def json_has(self, column: Any, key: str, value: str) -> ColumnElement[bool]:
        """`json_each`, because SQLite's JSON paths cannot spell a key holding a double quote."""
        each = func.json_each(column).table_valued("key", "value").alias("meta")
        return exists(
            select(literal(1)).select_from(each).where(each.c.key == key, each.c.value == value)
        )

    def joined_text(self, column: Any, sep: str) -> ColumnElement[str]:
        return func.group_concat(column, sep)

    def json_length(self, column: Any) -> ColumnElement[int]:
        return func.json_array_length(column)

    def floor(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """CAST truncates (SQLite may be built without `floor()`)."""
        return cast(value, BigInteger)

    def merge_sketch(self, old: str, new: str, scale: int) -> str:
        entries = f"json_each('[' || trim({old} || ',' || {new}, ',') || ']')"
        return (
            f"SELECT group_concat(v, ',') FROM (SELECT value / {scale} * {scale} "
            f"+ sum(value % {scale}) AS v FROM {entries} "
            f"GROUP BY value / {scale} ORDER BY value / {scale})"
        )


class PostgreSQL(Dialect):
    name = "postgresql"
    least, greatest = "least", "greatest"

    def insert_rows(
        self, table: Table, rows: Sequence[Row], tail: str = "", *, returns: bool = False
    ) -> list[Statement]:
        """One `INSERT ... SELECT FROM unnest($1::t1[], ...)` with a column array per
        parameter: asyncpg sends the whole batch in one round trip."""
        arrays = tuple(list(column) for column in zip(*rows, strict=True))
        return [Statement(self.insert_sql(table, tail), arrays, returns)]

    def insert_sql(self, table: Table, tail: str = "") -> str:
        return f"INSERT INTO {table.name} ({columns(table)}) {_unnest(table)} {tail}".rstrip()

    def matching(self, select: str, column: str, keys: Sequence[str]) -> list[Statement]:
        return [Statement(f"{select} WHERE {column} = ANY($1::text[])", (list(keys),), True)]

    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def json_has(self, column: Any, key: str, value: str) -> ColumnElement[bool]:
        """JSONB containment (`@>`), which a GIN index can serve."""
        return type_coerce(column, JSONB).contains({key: value})

    def joined_text(self, column: Any, sep: str) -> ColumnElement[str]:
        return func.string_agg(column, sep)

    def json_length(self, column: Any) -> ColumnElement[int]:
        return func.jsonb_array_length(column)

    def floor(self, value: ColumnElement[Any]) -> ColumnElement[int]:
        """`floor()`: PostgreSQL's CAST rounds."""
        return func.floor(value)

    def merge_sketch(self, old: str, new: str, scale: int) -> str:
        entries = f"unnest(string_to_array(btrim({old} || ',' || {new}, ','), ',')::bigint[])"
        return (
            f"SELECT string_agg((b * {scale} + n)::text, ',' ORDER BY b) FROM "
            f"(SELECT e / {scale} AS b, sum(e % {scale}) AS n FROM {entries} AS e GROUP BY 1) s"
        )

    def transaction_lock(self, key: int, *, shared: bool = False) -> str | None:
        return f"SELECT pg_advisory_xact_lock{'_shared' if shared else ''}({int(key)})"

    def lock_timeout(self, timeout: str) -> str | None:
        return f"SET LOCAL lock_timeout = '{timeout}'"


DIALECTS: dict[str, Dialect] = {d.name: d for d in (SQLite(), PostgreSQL())}


def dialect_of(name: str) -> Dialect:
    """The dialect for a SQLAlchemy dialect name (`engine.dialect.name`)."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unsupported database dialect {name!r}") from None


def columns(table: Table) -> str:
    return ", ".join(c.name for c in table.columns)


@lru_cache(maxsize=64)
def _values(table: Table, count: int) -> str:
    one = "(" + ", ".join("?" * len(table.columns)) + ")"
    return f"INSERT INTO {table.name} ({columns(table)}) VALUES {', '.join([one] * count)}"


def _array_type(column_type: Any) -> tuple[str, str]:
    """(array type of the parameter, cast applied to each element) for a column type."""
    if isinstance(column_type, JSON):
        return "text[]", "::jsonb"  # sent as JSON text, stored as jsonb
    for kind, name in (
        (Boolean, "bool"),
        (BigInteger, "int8"),
        (Integer, "int4"),
        (Double, "float8"),
        (LargeBinary, "bytea"),
        (String, "text"),
    ):
        if isinstance(column_type, kind):
            return f"{name}[]", ""
    raise TypeError(f"no PostgreSQL array type for {column_type!r}")


@lru_cache(maxsize=16)
def _unnest(table: Table) -> str:
    """`SELECT <casts> FROM unnest($1::t1[], $2::t2[], ...) AS u(<columns>)`."""
    arrays, picks = [], []
    for position, column in enumerate(table.columns, start=1):
        array, cast = _array_type(column.type)
        arrays.append(f"${position}::{array}")
        picks.append(f"{column.name}{cast}")
    return f"SELECT {', '.join(picks)} FROM unnest({', '.join(arrays)}) AS u({columns(table)})"
