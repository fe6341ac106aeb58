"""Migration 0009 moves each item's predictions into its `committee` column and back, on
SQLite and (when configured) PostgreSQL, keeping every prediction and its order."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text

from router.db.database import Database
from router.db.migrate import upgrade
from tests.integration.migrations import downgrade, fx_fresh_db  # noqa: F401

_AT = datetime(2026, 1, 1, tzinfo=UTC)


def _predictions(db: Database) -> list[tuple[str, str, str, list[float]]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT item_id, model, model_version, probs FROM prediction ORDER BY id")
        ).all()
    return [(r[0], r[1], r[2], r[3] if isinstance(r[3], list) else json.loads(r[3])) for r in rows]


def _committees(db: Database) -> dict[str, object]:
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, committee FROM item ORDER BY id")).all()
    return {r[0]: json.loads(r[1]) if isinstance(r[1], str) else r[1] for r in rows}


def test_predictions_move_into_the_item_and_back(fresh_db: Database) -> None:
    db = fresh_db
    upgrade(db, "0008")
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO project (id, name, label_schema, rubric_version, routing_version,"
                " created_at) VALUES ('p', 'p', :schema, 'r1', 1, :at)"
            ),
            {"schema": json.dumps({"kind": "categorical", "labels": ["a", "b"]}), "at": _AT},
        )
        for item_id in ("i1", "i2", "i3"):
            conn.execute(
                text(
                    "INSERT INTO item (id, project_id, external_id, batch_id, payload, is_gold,"
                    " status, labels_needed, n_labels, created_at, updated_at)"
                    " VALUES (:id, 'p', :id, 'b', '{}', false, 'queued', 0, 0, :at, :at)"
                ),
                {"id": item_id, "at": _AT},
            )
        # i1: two models stored in the order z, a (kept: order is the producer's); i2: one;
        # i3: none.
        for item_id, model, version, probs in [
            ("i1", "zeta", "v2", [0.25, 0.75]),
            ("i2", "alpha", "1.0", [1.0, 0.0]),
            ("i1", "alpha", "v1", [0.5, 0.5]),
        ]:
            conn.execute(
                text(
                    "INSERT INTO prediction (item_id, model, model_version, probs)"
                    " VALUES (:item, :model, :version, :probs)"
                ),
                {"item": item_id, "model": model, "version": version, "probs": json.dumps(probs)},
            )
    before = _predictions(db)

    upgrade(db)
    assert _committees(db) == {
        "i1": [
            {"model": "zeta", "model_version": "v2", "probs": [0.25, 0.75]},
            {"model": "alpha", "model_version": "v1", "probs": [0.5, 0.5]},
        ],
        "i2": [{"model": "alpha", "model_version": "1.0", "probs": [1.0, 0.0]}],
        "i3": None,
    }
    with db.engine.connect() as conn:
        tables = set(db.engine.dialect.get_table_names(conn))
    assert "prediction" not in tables

    downgrade(db, "0008")
    after = _predictions(db)
    # The same predictions, each item's in the same order (ids are renumbered by item).
    assert sorted(after) == sorted(before)
    assert [p for p in after if p[0] == "i1"] == [p for p in before if p[0] == "i1"]
