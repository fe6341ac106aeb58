"""update_by_key: one statement over arrays on PostgreSQL, executemany on SQLite; same result."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, select

from router.db.bulk import update_by_key
from router.runtime import Runtime

_META = MetaData()
_PROBE = Table(
    "bulk_probe",
    _META,
    Column("id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("score", Float, nullable=True),
    Column("n", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=True),
)


@pytest.fixture(name="probe")
def fx_probe(runtime: Runtime) -> Iterator[Table]:
    _META.drop_all(runtime.db.engine)
    _META.create_all(runtime.db.engine)
    with runtime.db.session() as session:
        session.execute(
            _PROBE.insert(),
            [
                {"id": f"r{i}", "status": "queued", "score": 9.0, "n": 0, "at": None}
                for i in range(6)
            ],
        )
        session.execute(_PROBE.update().where(_PROBE.c.id == "r5").values(status="done"))
    yield _PROBE
    _META.drop_all(runtime.db.engine)


def _rows(runtime: Runtime) -> list[tuple[object, ...]]:
    with runtime.db.read() as session:
        return [tuple(r) for r in session.execute(select(_PROBE).order_by(_PROBE.c.id))]


def test_each_row_gets_its_own_values_and_the_guard_holds(runtime: Runtime, probe: Table) -> None:
    at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    rows = [
        {"_id": f"r{i}", "status": "routed", "score": None if i % 2 else i / 4, "n": i, "at": at}
        for i in (0, 1, 2, 5)  # r5 fails the guard; r3, r4 are not named
    ]
    with runtime.db.session() as session:
        update_by_key(session, probe, rows, guard=probe.c.status == "queued")
    got = {r[0]: r[1:] for r in _rows(runtime)}
    assert got["r0"][:3] == ("routed", 0.0, 0)
    assert got["r1"][:3] == ("routed", None, 1)
    assert got["r2"][:3] == ("routed", 0.5, 2)
    for rid in ("r0", "r1", "r2"):
        stored = got[rid][3]
        assert stored is not None
        assert stored.replace(tzinfo=UTC) == at
    assert got["r3"] == ("queued", 9.0, 0, None)
    assert got["r4"] == ("queued", 9.0, 0, None)
    assert got["r5"] == ("done", 9.0, 0, None)


def test_a_column_of_only_nulls_is_written(runtime: Runtime, probe: Table) -> None:
    with runtime.db.session() as session:
        update_by_key(
            session,
            probe,
            [{"_id": "r0", "score": None, "at": None}, {"_id": "r1", "score": None, "at": None}],
        )
    got = {r[0]: r[1:] for r in _rows(runtime)}
    assert got["r0"] == ("queued", None, 0, None)
    assert got["r1"] == ("queued", None, 0, None)
    assert got["r2"] == ("queued", 9.0, 0, None)


def test_no_rows_is_no_statement(runtime: Runtime, probe: Table) -> None:
    with runtime.db.session() as session:
        update_by_key(session, probe, [])
    assert all(r[1] == "queued" for r in _rows(runtime)[:5])
