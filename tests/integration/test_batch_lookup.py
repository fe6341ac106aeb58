"""A scoring job finds its batch through an index seek, whatever the size of the item table:
it asked for any row of the batch, which the (status, batch_id) index can only answer by
reading itself whole (O(items) per job)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from router.routing.service import route_batch
from tests.integration.helpers import ingest, ordinary_item


def test_the_batch_is_found_by_seeking_the_index(client, project, runtime):
    if runtime.db.is_sqlite:
        pytest.skip("EXPLAIN plans are checked on PostgreSQL")
    batch_id = ingest(client, project, [ordinary_item("a"), ordinary_item("b")])["batch_id"]
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(runtime.db.engine, "before_cursor_execute", record)
    try:
        assert route_batch(runtime.db, runtime.assignments, batch_id)["routed"] == 2
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", record)
    lookup, params = sent[0]
    assert "batch_id" in lookup, lookup
    with runtime.db.engine.connect() as conn:
        # Whole-table scans priced out, so that the plan does not hang on a small table's
        # statistics.
        for setting in ("enable_seqscan", "enable_bitmapscan"):
            conn.execute(text(f"SET {setting} = off"))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + lookup, params))
    assert "ix_item_status_batch" in plan, plan
    [cond] = [line for line in plan.splitlines() if "Index Cond" in line]
    assert "status" in cond, plan
    assert "batch_id" in cond, plan
