"""Listing queued items (`status=queued`, what dashboards and producers poll to see a backlog
drain) reads its page from the partial index ix_item_queued_created, with no sort, whatever the
backlog and whether or not the database has statistics; and cursor paging through a backlog
that is being routed meanwhile lists each item once, in (created_at, id) order. The unfiltered
listing likewise reads (project_id, created_at, id) in order.

Run on SQLite and (when ROUTER_TEST_DATABASE_URL is set) PostgreSQL, each on a database of its
own: fresh, so without statistics until the test runs ANALYZE.
"""

from __future__ import annotations

import hashlib
import os
import re
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql
from sqlalchemy import Engine, Table, event, insert, text, update

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.cursor import encode_cursor
from router.db.database import Database
from router.db.migrate import upgrade
from router.db.models import Item
from router.items.service import ItemPage, list_items
from tests.conftest import own_pg_database

_PG_URL = os.environ.get("ROUTER_TEST_DATABASE_URL")
_ITEM = typing.cast("Table", Item.__table__)  # type: ignore[attr-defined]
_PROJECT = "Kx3vQ9_aZ-f2LmN8"
_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_BATCH = 1000
"""Items of one ingest request share their created_at: pages cut through ties."""
_ROUTED = 3_000
_QUEUED = 12_000
"""With 16-character ids, 12,000 queued items make the partial index one level deeper than
(project_id, status, tier), whose repeated keys are deduplicated; without statistics
PostgreSQL estimates a single queued row and, left to itself, read that shallower index and
sorted every queued row."""


@dataclass(frozen=True, slots=True)
class Backlog:
    db: Database
    queued: list[str]
    """The queued items' ids in listing order, (created_at, id)."""
    created_at: dict[str, datetime]


def _item_id(n: int) -> str:
    # Lowercase hex, all of one length: the same order under any collation, and not the
    # order of n within a batch.
    return hashlib.sha256(str(n).encode()).hexdigest()[:16]


@pytest.fixture(name="backlog", params=["sqlite"] + (["postgresql"] if _PG_URL else []))
def fx_backlog(request: pytest.FixtureRequest, tmp_path) -> Iterator[Backlog]:
    """A project of 15,000 items in batches of 1,000: the oldest 3,000 routed, the rest queued."""
    with _fresh_database(str(request.param), tmp_path) as db:
        rows = []
        for n in range(_ROUTED + _QUEUED):
            at = _T0 + timedelta(seconds=n // _BATCH)
            routed = n < _ROUTED
            rows.append(
                {
                    "id": _item_id(n),
                    "project_id": _PROJECT,
                    "external_id": f"e{n}",
                    "batch_id": f"b{n // _BATCH}",
                    "payload": {"text": f"e{n}"},
                    "is_gold": False,
                    "status": "routed" if routed else "queued",
                    "tier": "crowd" if routed else None,
                    "labels_needed": 3 if routed else 0,
                    "n_labels": 0,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO project (id, name, label_schema, rubric_version,"
                    " routing_version, created_at) VALUES (:id, 'p', '{}', 'r1', 1, :at)"
                ),
                {"id": _PROJECT, "at": _T0},
            )
            conn.execute(insert(_ITEM), rows)
        queued = sorted(
            (r for r in rows if r["status"] == "queued"), key=lambda r: (r["created_at"], r["id"])
        )
        yield Backlog(
            db=db,
            queued=[r["id"] for r in queued],
            created_at={r["id"]: r["created_at"] for r in rows},
        )


@contextmanager
def _fresh_database(kind: str, tmp_path) -> Iterator[Database]:
    if kind == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'listing.db'}")
        upgrade(db)
        yield db
        db.dispose()
        return
    with own_pg_database(f"labelrouter_listing_{os.getpid()}") as url:
        db = Database(url)
        upgrade(db)
        with db.engine.begin() as conn:
            # Statistics come only from the test's ANALYZE, wherever autovacuum is on.
            conn.execute(text("ALTER TABLE item SET (autovacuum_enabled = false)"))
        yield db
        db.dispose()


def _list(
    db: Database,
    role: Role,
    *,
    cursor: str | None = None,
    limit: int = 1,
    status: str | None = "queued",
) -> ItemPage:
    actor = Principal(key_id="k", role=role, project_id=_PROJECT)
    return list_items(db, actor, _PROJECT, status=status, tier=None, cursor=cursor, limit=limit)


@contextmanager
def _statements_sent() -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) sent to any database during the block."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _pg_plans(db: Database, sent: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The plan of the item listing among `sent`, replayed in one transaction as sent: as
    planned for these parameters, and as a generic plan (what a statement prepared by the
    driver may get after a few runs, planned without the parameters' values)."""
    *before, (listing, params) = sent
    assert "FROM item" in listing
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", listing)))
    prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m[1]) + 1}", listing)
    plans = []
    with db.engine.connect() as conn:
        for statement, parameters in before:
            conn.exec_driver_sql(statement, parameters)
        plans.append(conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + listing, params).scalar_one())
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql("PREPARE listing AS " + prepared)
        try:
            raw = conn.connection.dbapi_connection
            values = sql.SQL(", ").join(sql.Literal(params[n]) for n in names).as_string(raw)
            generic = f"EXPLAIN (FORMAT JSON) EXECUTE listing({values})"
            plans.append(conn.exec_driver_sql(generic).scalar_one())
        finally:
            conn.exec_driver_sql("DEALLOCATE listing")
    return [plan[0]["Plan"] for plan in plans]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _assert_reads_in_order(
    db: Database, sent: list[tuple[str, Any]], index: str = "ix_item_queued_created"
) -> None:
    """The listing among `sent` reads `index` in listing order and sorts nothing."""
    if db.is_sqlite:
        listing, params = sent[-1]
        assert "FROM item" in listing
        with db.engine.connect() as conn:
            details = [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + listing, params)]
        assert any(f"USING INDEX {index}" in d for d in details), details
        assert not any("TEMP B-TREE" in d for d in details), details
        return
    for plan in _pg_plans(db, sent):
        nodes = list(_nodes(plan))
        assert not [n for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")], plan
        assert [n for n in nodes if n.get("Index Name") == index], plan


def test_queued_listing_reads_the_queued_index_without_sorting(backlog: Backlog) -> None:
    db = backlog.db
    # The cursor of a page ending inside a batch (of ties on created_at).
    last = backlog.queued[4320]
    mid_batch = encode_cursor(backlog.created_at[last], last)
    for with_statistics in (False, True):
        if with_statistics:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        for role in (Role.PRODUCER, Role.OPS):
            for cursor, limit in ((None, 1), (None, 100), (mid_batch, 1), (mid_batch, 100)):
                with _statements_sent() as sent:
                    page = _list(db, role, cursor=cursor, limit=limit)
                start = 4321 if cursor else 0
                assert [i["id"] for i in page.items] == backlog.queued[start : start + limit]
                _assert_reads_in_order(db, sent)


def test_listing_every_item_reads_the_creation_index_without_sorting(backlog: Backlog) -> None:
    """No status, no tier: the page is read from (project_id, created_at, id) in order, not
    sorted out of the whole project (what PostgreSQL did without statistics)."""
    db = backlog.db
    everything = sorted(
        (at, item_id) for item_id, at in backlog.created_at.items()
    )  # routed and queued alike
    last = everything[4320][1]
    mid_batch = encode_cursor(backlog.created_at[last], last)
    for with_statistics in (False, True):
        if with_statistics:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        for cursor, limit in ((None, 1), (None, 100), (mid_batch, 100)):
            with _statements_sent() as sent:
                page = _list(db, Role.OPS, cursor=cursor, limit=limit, status=None)
            start = 4321 if cursor else 0
            want = [item_id for _, item_id in everything[start : start + limit]]
            assert [i["id"] for i in page.items] == want
            _assert_reads_in_order(db, sent, "ix_item_project_created")


def test_paging_through_the_backlog_while_it_is_routed(backlog: Backlog) -> None:
    """Between pages, items are routed: some already listed, some ahead of the cursor. Each
    item is listed once, in order, and those routed before the listing reached them not at
    all."""
    db = backlog.db
    position = {item_id: n for n, item_id in enumerate(backlog.queued)}
    listed: list[str] = []
    routed_ahead: set[str] = set()
    cursor = None
    for _ in range(100):
        page = _list(db, Role.PRODUCER, cursor=cursor, limit=700)
        listed += [i["id"] for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        seen = position[listed[-1]]
        behind = backlog.queued[seen - 600 : seen : 7]
        ahead = [i for i in backlog.queued[seen + 1 : seen + 800 : 5] if i not in routed_ahead]
        routed_ahead.update(ahead)
        with db.engine.begin() as conn:
            conn.execute(
                update(_ITEM)
                .where(_ITEM.c.id.in_(behind + ahead), _ITEM.c.status == "queued")
                .values(status="routed", tier="crowd")
            )
    else:
        raise AssertionError("the listing never ended")
    assert len(listed) == len(set(listed))
    assert listed == [i for i in backlog.queued if i not in routed_ahead]
    keys = [(backlog.created_at[i], i) for i in listed]
    assert keys == sorted(keys)
