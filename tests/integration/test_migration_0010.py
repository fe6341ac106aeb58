"""Migration 0010 adds the partial index of queued items (ix_item_queued_created) and drops it
again, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect

from router.db.database import Database
from router.db.migrate import alembic_config, upgrade
from tests.conftest import own_pg_database

_PG_URL = os.environ.get("ROUTER_TEST_DATABASE_URL")


@pytest.fixture(name="fresh_db", params=["sqlite"] + (["postgresql"] if _PG_URL else []))
def fx_fresh_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    """An empty database of its own (the suite's shared ones are already at head)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        db.dispose()
        return
    with own_pg_database(f"labelrouter_migration_0010_{os.getpid()}") as url:
        db = Database(url)
        yield db
        db.dispose()


def _downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


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

    _downgrade(db, "0009")
    assert "ix_item_queued_created" not in _item_indexes(db)
    upgrade(db)
    assert "ix_item_queued_created" in _item_indexes(db)
