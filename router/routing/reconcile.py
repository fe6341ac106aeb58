"""The reconciler: makes Redis agree with the database again after any failure.

- Items stored but never scored (Redis was down at ingest, a job was lost) get a scoring job.
- When Redis lost its data (the epoch marker is gone), everything the claim path needs is
  rebuilt from the database: gold pools, seen sets, live leases and every routed item's free
  label slots on its tier queue.
- Otherwise, items routed or re-targeted recently get their slots recomputed (a worker that
  died between its commit and its Redis update), and items whose wanted labels are all in but
  whose consensus update was lost get one again.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from router.db.database import Database, as_utc
from router.db.models import Annotator, Assignment, Item, Label, utcnow
from router.queueing.assignments import AssignmentStore
from router.queueing.jobs import JobQueue

__all__ = ["EPOCH_KEY", "reconcile"]

EPOCH_KEY = "lr:epoch"
"""Set once Redis state was rebuilt from the database; gone means Redis lost its data."""
_CHUNK = 2_000


def reconcile(
    db: Database,
    jobs: JobQueue,
    store: AssignmentStore,
    *,
    grace_s: float,
    recent_s: float,
    started_grace_s: float,
) -> dict[str, Any]:
    now = utcnow()
    with db.read() as session:
        stranded = list(
            session.execute(
                select(col(Item.batch_id))
                .where(
                    col(Item.status) == "queued",
                    col(Item.created_at) < now - timedelta(seconds=grace_s),
                )
                .distinct()
            ).scalars()
        )
    enqueued = 0
    for batch_id in stranded:
        if not jobs.scoring_pending(batch_id, started_grace_s=started_grace_s):
            jobs.enqueue_scoring(batch_id)
            enqueued += 1

    full = not jobs.redis.exists(EPOCH_KEY)
    with db.read() as session:
        _restore_gold(session, store)
        if full:
            _restore_seen_and_leases(session, store, now)
        since = None if full else now - timedelta(seconds=recent_s)
        overdue = now - timedelta(seconds=grace_s)
        reopened, stuck = _restore_open_items(session, store, since, overdue)
    for project_id, item_id in stuck:
        jobs.enqueue_consensus(project_id, item_id)
    if full:
        jobs.redis.set(EPOCH_KEY, now.isoformat())
    return {
        "stranded_batches": len(stranded),
        "enqueued": enqueued,
        "requeued": reopened,
        "consensus_rescheduled": len(stuck),
        "full_rebuild": full,
    }


def _restore_gold(session: Session, store: AssignmentStore) -> None:
    rows = session.execute(
        select(col(Item.project_id), col(Item.id)).where(col(Item.is_gold).is_(True))
    )
    grouped: dict[str, list[str]] = defaultdict(list)
    for project_id, item_id in rows:
        grouped[project_id].append(item_id)
    for project_id, ids in grouped.items():
        store.add_gold(project_id, ids)


def _restore_seen_and_leases(session: Session, store: AssignmentStore, now: datetime) -> None:
    rows = session.execute(
        select(
            col(Assignment.project_id),
            col(Assignment.annotator_id),
            col(Assignment.item_id),
            col(Assignment.id),
            col(Assignment.tier),
            col(Assignment.status),
            col(Assignment.lease_expires_at),
            col(Item.priority),
        )
        .join(Item, col(Item.id) == col(Assignment.item_id))
        .execution_options(yield_per=_CHUNK)
    )
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for project_id, annotator_id, item_id, aid, tier, status, expires, priority in rows:
        seen[(project_id, annotator_id)].append(item_id)
        if status == "leased" and as_utc(expires) > now:
            store.restore_lease(
                project_id,
                assignment_id=aid,
                item_id=item_id,
                annotator_id=annotator_id,
                tier=tier,
                priority=priority or 0.0,
                expires_ms=int(as_utc(expires).timestamp() * 1000),
            )
    for (project_id, annotator_id), items in seen.items():
        store.mark_seen(project_id, annotator_id, items)


def _restore_open_items(
    session: Session, store: AssignmentStore, since: datetime | None, settled_before: datetime
) -> tuple[int, list[tuple[str, str]]]:
    """Recompute free slots of routed items; list those whose consensus update is overdue."""
    query = select(
        col(Item.project_id),
        col(Item.id),
        col(Item.tier),
        col(Item.priority),
        col(Item.labels_needed),
        col(Item.updated_at),
    ).where(
        col(Item.status) == "routed",
        col(Item.is_gold).is_(False),
        col(Item.tier).in_(("crowd", "expert")),
    )
    if since is not None:
        query = query.where(or_(col(Item.routed_at) >= since, col(Item.updated_at) >= since))
    reopened = 0
    stuck: list[tuple[str, str]] = []
    result = session.execute(query.execution_options(yield_per=_CHUNK))
    for chunk in result.partitions(_CHUNK):
        labeled = _labels_in_tier(session, [row[1] for row in chunk])
        grouped: dict[str, list[tuple[str, str, float, int]]] = defaultdict(list)
        for project_id, item_id, tier, priority, needed, updated_at in chunk:
            have = labeled.get((item_id, tier), 0)
            wanted = max(0, needed - have)
            grouped[project_id].append((item_id, tier, priority or 0.0, wanted))
            if wanted == 0 and as_utc(updated_at) < settled_before:
                stuck.append((project_id, item_id))
        for project_id, entries in grouped.items():
            store.open_items(project_id, entries)
            reopened += len(entries)
    return reopened, stuck


def _labels_in_tier(session: Session, item_ids: list[str]) -> dict[tuple[str, str], int]:
    """Counted labels per (item, tier), as consensus counts them: crowd-queue labels for the
    crowd tier, labels by expert annotators for the expert tier; suspended annotators' left out.
    """
    rows = session.execute(
        select(col(Label.item_id), col(Assignment.tier), col(Annotator.tier), func.count())
        .join(Assignment, col(Assignment.id) == col(Label.assignment_id))
        .join(Annotator, col(Annotator.id) == col(Label.annotator_id))
        .where(col(Label.item_id).in_(item_ids), col(Annotator.status) == "active")
        .group_by(col(Label.item_id), col(Assignment.tier), col(Annotator.tier))
    )
    out: dict[tuple[str, str], int] = defaultdict(int)
    for item_id, queue_tier, annotator_tier, n in rows:
        if queue_tier == "crowd":
            out[(item_id, "crowd")] += int(n)
        if annotator_tier == "expert":
            out[(item_id, "expert")] += int(n)
    return dict(out)
