"""The Alembic migrations build exactly the schema the SQLModel tables describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import router.db.models  # noqa: F401  (registers the tables)
from router.db.database import Database
from router.db.migrate import alembic_config, is_up_to_date, upgrade


def _diffs(db: Database) -> list[object]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_fresh_sqlite_migration_matches_the_models(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert not is_up_to_date(db)
        upgrade(db)
        assert is_up_to_date(db)
        assert _diffs(db) == []
        upgrade(db)  # running it again is a no-op
        assert _diffs(db) == []
    finally:
        db.dispose()


def test_backend_database_matches_the_models(runtime):
    # SQLite on the embedded backend, the migrated PostgreSQL test database on the real one.
    assert is_up_to_date(runtime.db)
    assert _diffs(runtime.db) == []


def test_migrations_form_one_line_of_history(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    script = ScriptDirectory.from_config(alembic_config(db))
    db.dispose()
    assert len(script.get_heads()) == 1
    assert len(script.get_bases()) == 1
