"""Storing ingested items (all or nothing, idempotent on external_id) and reading them back."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import DateTime, Row, and_, bindparam, literal, or_, select, text
from sqlmodel import Session, col

from router import audit
from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.cursor import decode_cursor, encode_cursor
from router.db.database import Database, as_utc
from router.db.models import Item, new_id, utcnow
from router.errors import InvalidInput, NotFound
from router.items.ingest import IngestItem, ItemPrediction
from router.projects.service import get_project
from router.queueing.jobs import JobQueue

__all__ = ["IngestResult", "ItemPage", "get_item", "ingest_items", "item_view", "list_items"]

log = logging.getLogger(__name__)

STATUSES = ("queued", "routed", "done")
TIERS = ("auto", "crowd", "expert")
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class IngestResult:
    batch_id: str
    accepted: int
    duplicates: int
    ids: list[tuple[str, str]]
    """(external_id, id) for every item of the request, in request order."""


def ingest_items(
    db: Database,
    jobs: JobQueue,
    actor: Principal,
    project_id: str,
    items: Sequence[IngestItem],
    *,
    before_commit: Callable[[Session, IngestResult], None] | None = None,
) -> IngestResult:
    """Store new items durably as `queued`, then hand the batch to a scoring job.

    Repeats of an external_id already stored, or earlier in the same request, are counted as
    duplicates and not stored again. The database commit happens before the job is enqueued;
    if Redis is down then, the reconciler enqueues the batch later, so nothing is stranded.
    """
    actor.authorize(project_id, Role.PRODUCER, Role.OPS)
    batch_id = new_id()
    first: dict[str, IngestItem] = {}
    for item in items:
        first.setdefault(item.external_id, item)
    now = utcnow()
    with db.session() as session:
        get_project(session, actor, project_id)
        # Insert first and look up only what was not inserted (a repeat of a stored
        # external_id, or one a concurrent request stored first): most batches are all new.
        fresh = sorted(first.values(), key=lambda item: item.external_id)
        inserted = _insert_items(session, db, project_id, batch_id, fresh, now)
        missing = [item.external_id for item in fresh if item.external_id not in inserted]
        existing = _existing_ids(session, project_id, missing) if missing else {}
        ids = {**existing, **inserted}
        accepted = len(inserted)
        duplicates = len(items) - accepted
        audit.record(
            session,
            actor,
            "items.ingested",
            object_type="batch",
            object_id=batch_id,
            project_id=project_id,
            detail={"accepted": accepted, "duplicates": duplicates},
        )
        result = IngestResult(
            batch_id=batch_id,
            accepted=accepted,
            duplicates=duplicates,
            ids=[(item.external_id, ids[item.external_id]) for item in items],
        )
        if before_commit is not None:  # e.g. the Idempotency-Key response, stored with the items
            before_commit(session, result)
    if accepted:
        try:
            jobs.enqueue_scoring(batch_id)
        except Exception:  # Redis down: the items are stored; the reconciler will enqueue them.
            log.warning("could not enqueue scoring of batch %s; the reconciler will", batch_id)
    return result


def _existing_ids(session: Session, project_id: str, external_ids: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(external_ids), _IN_CHUNK):
        chunk = external_ids[start : start + _IN_CHUNK]
        result = session.execute(
            select(col(Item.external_id), col(Item.id)).where(
                col(Item.project_id) == project_id, col(Item.external_id).in_(chunk)
            )
        )
        found.update(dict(result.all()))
    return found


def _insert_items(
    session: Session,
    db: Database,
    project_id: str,
    batch_id: str,
    items: list[IngestItem],
    now: datetime,
) -> dict[str, str]:
    """Insert the items as queued, skipping external_ids already stored; {external_id: id} of
    those inserted.

    `items` come sorted by external_id: two requests inserting overlapping external_ids then
    take the unique-index locks in the same order and wait for each other instead of
    deadlocking (PostgreSQL).
    """
    if not items:
        return {}
    # One statement whose rows travel as one JSON document: its text is the same for every
    # batch (prepared once per connection on PostgreSQL), and the payloads go in as they were
    # encoded when checked, with no per-row parameter binding.
    doc = _ENCODER.encode(
        [
            _ItemRow(
                id=new_id(),
                external_id=item.external_id,
                payload=msgspec.Raw(item.payload_json),
                provenance=item.provenance,
                committee=item.predictions or None,
            )
            for item in items
        ]
    )
    result = session.execute(
        _SQLITE_INSERT_ITEMS if db.is_sqlite else _PG_INSERT_ITEMS,
        {"project_id": project_id, "batch_id": batch_id, "now": now, "rows": doc.decode()},
    )
    return {str(ext): str(iid) for ext, iid in result.all()}


class _ItemRow(msgspec.Struct):
    id: str
    external_id: str
    payload: msgspec.Raw
    provenance: dict[str, Any] | None
    committee: list[ItemPrediction] | None
    """Encoded as the `committee` column stores it (see `Item.committee`)."""


_ENCODER = msgspec.json.Encoder()
_PG_INSERT_ITEMS = text(
    """
    INSERT INTO item (id, project_id, external_id, batch_id, payload, provenance, committee,
                      is_gold, status, labels_needed, n_labels, created_at, updated_at)
    SELECT u.id, :project_id, u.external_id, :batch_id, u.payload, u.provenance, u.committee,
           false, 'queued', 0, 0, :now, :now
    FROM ROWS FROM (
           json_to_recordset(CAST(:rows AS json))
             AS (id varchar, external_id varchar, payload json, provenance json, committee json)
         ) WITH ORDINALITY AS u(id, external_id, payload, provenance, committee, n)
    ORDER BY u.n
    ON CONFLICT (project_id, external_id) DO NOTHING
    RETURNING external_id, id
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
# The same from SQLite's json_each (json_extract keeps numbers' and objects' text as sent);
# `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
_SQLITE_INSERT_ITEMS = text(
    """
    INSERT INTO item (id, project_id, external_id, batch_id, payload, provenance, committee,
                      is_gold, status, labels_needed, n_labels, created_at, updated_at)
    SELECT json_extract(value, '$.id'), :project_id, json_extract(value, '$.external_id'),
           :batch_id, json_extract(value, '$.payload'), json_extract(value, '$.provenance'),
           json_extract(value, '$.committee'), 0, 'queued', 0, 0, :now, :now
    FROM json_each(:rows) WHERE true
    ON CONFLICT (project_id, external_id) DO NOTHING
    RETURNING external_id, id
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))


def get_item(db: Database, actor: Principal, project_id: str, item_id: str) -> dict[str, Any]:
    actor.authorize(project_id, Role.PRODUCER, Role.OPS)
    with db.read() as session:
        get_project(session, actor, project_id)
        item = session.get(Item, item_id)
        if (
            item is None
            or item.project_id != project_id
            or (item.is_gold and actor.role is Role.PRODUCER)
        ):
            raise NotFound(f"item {item_id!r} not found in project {project_id!r}")
        view = item_view(item, with_gold_flag=actor.role is not Role.PRODUCER)
        view["payload"] = item.payload
        view["provenance"] = item.provenance
        view["predictions"] = item.committee or []
        return view


@dataclass(frozen=True, slots=True)
class ItemPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def list_items(
    db: Database,
    actor: Principal,
    project_id: str,
    *,
    status: str | None,
    tier: str | None,
    cursor: str | None,
    limit: int,
) -> ItemPage:
    actor.authorize(project_id, Role.PRODUCER, Role.OPS)
    problems = []
    if status is not None and status not in STATUSES:
        problems.append({"field": "status", "message": f"must be one of {', '.join(STATUSES)}"})
    if tier is not None and tier not in TIERS:
        problems.append({"field": "tier", "message": f"must be one of {', '.join(TIERS)}"})
    if not 1 <= limit <= 1000:
        problems.append({"field": "limit", "message": "must be between 1 and 1000"})
    after = decode_cursor(cursor, problems) if cursor else None
    if problems:
        raise InvalidInput("invalid listing parameters", extra=problems)
    with db.read() as session:
        get_project(session, actor, project_id)
        query = select(*_VIEW_COLUMNS).where(col(Item.project_id) == project_id)
        if status is not None:
            # Inline (it is one of STATUSES): a partial index, ix_item_queued_created, is usable
            # only where the planner sees its predicate, and a generic plan of a prepared
            # statement does not see a bound parameter's value.
            query = query.where(col(Item.status) == literal(status, literal_execute=True))
        if tier is not None:
            query = query.where(col(Item.tier) == tier)
        if actor.role is Role.PRODUCER:
            query = query.where(col(Item.is_gold).is_(False))
        if after is not None:
            ts, last_id = after
            # The plain bound lets the (project, created_at, id) index seek to the page.
            query = query.where(
                col(Item.created_at) >= ts,
                or_(
                    col(Item.created_at) > ts,
                    and_(col(Item.created_at) == ts, col(Item.id) > last_id),
                ),
            )
        query = query.order_by(col(Item.created_at), col(Item.id)).limit(limit + 1)
        if status in (None, "queued") and tier is None and not db.is_sqlite:
            session.execute(_NO_SORT)
        rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    gold_flag = actor.role is not Role.PRODUCER
    return ItemPage(
        items=[item_view(r, with_gold_flag=gold_flag) for r in rows],
        next_cursor=encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None,
    )


def item_view(item: Item | Row[Any], *, with_gold_flag: bool) -> dict[str, Any]:
    """The contract's item read-out, from an item or a row of `_VIEW_COLUMNS`."""
    consensus = (
        {"label": item.consensus_label, "confidence": item.consensus_confidence}
        if item.consensus_label is not None
        else None
    )
    view: dict[str, Any] = {
        "id": item.id,
        "external_id": item.external_id,
        "status": item.status,
        "tier": item.tier,
        "scores": {
            "uncertainty": item.uncertainty,
            "disagreement": item.disagreement,
            "priority": item.priority,
        },
        "n_labels": item.n_labels,
        "labels_needed": item.labels_needed,
        "consensus": consensus,
        "routing_reason": item.routing_reason,
        "config_version": item.config_version,
        "created_at": _iso(item.created_at),
        "routed_at": _iso(item.routed_at),
        "settled_at": _iso(item.settled_at),
    }
    if with_gold_flag:
        view["is_gold"] = item.is_gold
    return view


# Sent (PostgreSQL) before listing queued items, or all items, for the rest of the read
# transaction: read them in listing order from ix_item_queued_created (or
# ix_item_project_created) rather than sort them. Without column statistics (a fresh table,
# before autovacuum analyzes it) the planner estimates one queued row, for which reading in
# order saves nothing over sorting, and it read the shallower (project_id, status, tier) index,
# whose repeated keys are deduplicated, then sorted every queued row (every item of the project,
# unfiltered). Not with a tier filter: that index can answer it from its three columns (queued
# items have no tier), where an index in listing order would be read to its end.
_NO_SORT = text("SET LOCAL enable_sort = off")

# What item_view reads: a listing selects these, not the payload and provenance it would
# decode for nothing.
_VIEW_COLUMNS = (
    col(Item.id),
    col(Item.external_id),
    col(Item.status),
    col(Item.tier),
    col(Item.uncertainty),
    col(Item.disagreement),
    col(Item.priority),
    col(Item.n_labels),
    col(Item.labels_needed),
    col(Item.consensus_label),
    col(Item.consensus_confidence),
    col(Item.routing_reason),
    col(Item.config_version),
    col(Item.created_at),
    col(Item.routed_at),
    col(Item.settled_at),
    col(Item.is_gold),
)


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None
