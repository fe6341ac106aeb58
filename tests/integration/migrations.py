"""What the migration tests share: an empty database of their own on each backend, and a
downgrade to a revision."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from alembic import command

from router.db.database import Database
from router.db.migrate import alembic_config
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
    with own_pg_database(f"labelrouter_migration_{os.getpid()}") as url:
        db = Database(url)
        yield db
        db.dispose()


def downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
