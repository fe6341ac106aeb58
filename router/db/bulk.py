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
from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    Update,
    any_,
    bindparam,
    cast,
    column,
    func,
    select,
    update,
)
from sqlalchemy.types import JSON
from sqlmodel import Session

__all__ = ["id_list", "in_id_list", "update_by_key"]

_ENCODER = msgspec.json.Encoder()


def in_id_list(column: ColumnElement[Any], name: str, *, postgresql: bool) -> ColumnElement[bool]:
    """`column` is one of the ids bound as `name` (pass them through `id_list`).

    On PostgreSQL the ids go as one JSON array, `= ANY(ARRAY(subquery))`: one statement text
    whatever their number, where an expanding IN renders a parameter per id (client CPU per id)
    and makes a new text (to convert, parse and plan) for each number of ids; the subquery
    runs once, then an index scan (`IN (subquery)` let the planner hash-join a scan of the
    whole table). Elsewhere an expanding IN.
    """
    if not postgresql:
        return column.in_(bindparam(name, expanding=True))
    ids = cast(bindparam(name, type_=Text), JSON)
    return column == any_(func.array(select(func.json_array_elements_text(ids)).scalar_subquery()))


def id_list(ids: Sequence[str], *, postgresql: bool) -> str | list[str]:
    """The value of an `in_id_list` parameter."""
    return _ENCODER.encode(ids).decode() if postgresql else list(ids)


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
    # The rows as they are: json_to_recordset reads the columns it declares and ignores any
    # other key (copying each row down to its columns cost more than encoding the rest).
    doc = _ENCODER.encode(rows)
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
