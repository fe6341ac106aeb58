"""Writing many rows of a table in one statement.

On PostgreSQL a row-per-parameter-set executemany costs a round of parse, plan and execute per
row; one UPDATE joined to `unnest` of one array per column sends the rows as a few array
parameters and runs once. SQLite runs the executemany in process, where it is already cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

__all__ = ["update_by_key"]


def update_by_key(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: str = "id",
    guard: ColumnElement[bool] | None = None,
) -> None:
    """Set, on each row of `table` whose `key` column equals a row's `_id`, the columns that
    row names (every row names the same ones); rows failing `guard` are left as they are."""
    if not rows:
        return
    columns = [name for name in rows[0] if not name.startswith("_")]
    target = table.c[key]
    if session.get_bind().dialect.name != "postgresql":
        stmt = update(table).where(target == bindparam("_id"))
        if guard is not None:
            stmt = stmt.where(guard)
        session.connection().execute(
            stmt.values({name: bindparam(name) for name in columns}), list(rows)
        )
        return
    names = ["_id", *columns]
    types = [target.type, *(table.c[name].type for name in columns)]
    arrays = [
        bindparam(f"a{i}", [row[name] for row in rows], type_=ARRAY(type_))
        for i, (name, type_) in enumerate(zip(names, types, strict=True))
    ]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="u")
    stmt = update(table).where(target == source.c["_id"])
    if guard is not None:
        stmt = stmt.where(guard)
    session.execute(stmt.values({name: source.c[name] for name in columns}))
