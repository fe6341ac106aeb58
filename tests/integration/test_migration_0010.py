"""Migration 0010 adds the partial index of queued items (ix_item_queued_created) and drops it
again, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect

from router.db.database import Database
from router.db.migrate import upgrade
from tests.integration.migrations import downgrade, fx_fresh_db  # noqa: F401


def _item_indexes(db: Database) -> dict[str, dict[str, Any]]:
    with db.engine.connect() as conn:
        return {str(ix["name"]): dict(ix) for ix in inspect(conn).get_indexes("item")}


def test_the_queued_items_index_comes_and_goes(fresh_db: Database) -> None:
    db = fresh_db
    upgrade(db, "0009")
    assert "ix_item_queued_created" not in _item_indexes(db)

    upgrade(db, "0010")
    index = _item_indexes(db)["ix_item_queued_created"]
    assert index["column_names"] == ["project_id", "created_at", "id"]
    assert not index["unique"]
    # Partial: only queued rows are in it (PostgreSQL reflects `(status)::text = 'queued'::text`).
    options = index["dialect_options"]
    predicate = str(options.get("postgresql_where", options.get("sqlite_where")))
    assert "status" in predicate
    assert "'queued'" in predicate

    downgrade(db, "0009")
    assert "ix_item_queued_created" not in _item_indexes(db)
    upgrade(db)
    assert "ix_item_queued_created" in _item_indexes(db)
