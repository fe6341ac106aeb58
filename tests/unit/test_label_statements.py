"""The label's one-statement write on PostgreSQL stores the same columns as the SQLite path."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql

from router.db.models import Label
from router.labels.service import _LABEL_VALUES, _PG_WRITE_LABEL


def test_every_label_column_but_the_gold_record_is_written_with_the_label():
    # A new column of `label` must be added to the label's values and to `_LABEL_VALUES`.
    columns = {c.name for c in Label.__table__.columns}  # type: ignore[attr-defined]
    assert set(_LABEL_VALUES) == columns - {"gold_recorded_at"}


def test_the_postgresql_write_inserts_the_label_marks_the_assignment_and_counts_the_item():
    sql = str(_PG_WRITE_LABEL.compile(dialect=postgresql.psycopg.dialect()))  # type: ignore[attr-defined]
    assert sql.count("INSERT INTO label") == 1
    assert "UPDATE assignment SET status" in sql
    assert "UPDATE item SET n_labels=(item.n_labels +" in sql
    for name in _LABEL_VALUES:
        assert f"%(l_{name})s" in sql
