"""Writing many rows of a table in one statement.

On PostgreSQL a row-per-parameter-set executemany costs a round of parse, plan and execute per
row; one UPDATE joined to the rows sent as a single JSON document (`json_to_recordset`) runs
once, and encoding the document (msgspec, in C) costs far less than adapting one parameter per
value. SQLite runs the executemany in process, where it is already cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Table, Text, Update, bindparam, cast, column, func, update
from sqlalchemy.types import JSON
from sqlmodel import Session

__all__ = ["update_by_key"]

_ENCODER = msgspec.json.Encoder()


def update_by_key(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str = "id",
    guard: ColumnElement[bool] | None = None,
) -> None:
    """Set, on each row of `table` whose `key` column equals a row's `_id`, the columns that
    row names (every row names the same ones; names starting with `_` are not columns); rows
    failing `guard` are left as they are."""
    if not rows:
        return
    columns = tuple(name for name in rows[0] if not name.startswith("_"))
    postgresql = session.get_bind().dialect.name == "postgresql"
    if guard is None:
        stmt = _statement(table, columns, key, postgresql)
    else:
        stmt = _build(table, columns, key, postgresql, guard)
    conn = session.connection()
    if not postgresql:
        conn.execute(stmt, list(rows))
        return
    doc = _ENCODER.encode([{name: row[name] for name in ("_id", *columns)} for row in rows])
    conn.execute(stmt, {"rows": doc.decode()})


@functools.lru_cache(maxsize=128)
def _statement(table: Table, columns: tuple[str, ...], key: str, postgresql: bool) -> Update:
    """The UPDATE of these columns by key, built once: building one costs about as much CPU
    as running it."""
    return _build(table, columns, key, postgresql, None)


def _build(
    table: Table,
    columns: tuple[str, ...],
    key: str,
    postgresql: bool,
    guard: ColumnElement[bool] | None,
) -> Update:
    target = table.c[key]
    if not postgresql:
        stmt = update(table).where(target == bindparam("_id"))
        if guard is not None:
            stmt = stmt.where(guard)
        return stmt.values({name: bindparam(name) for name in columns})
    source = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text), JSON))
        .table_valued(
            column("_id", target.type), *(column(name, table.c[name].type) for name in columns)
        )
        .render_derived(name="u", with_types=True)
    )
    stmt = update(table).where(target == source.c["_id"])
    if guard is not None:
        stmt = stmt.where(guard)
    return stmt.values({name: source.c[name] for name in columns})
