"""The reconciler: makes Redis agree with the database again after any failure.

- Items stored but never scored (Redis was down at ingest, a job was lost) get a scoring job.
- When Redis lost its data (the epoch marker is gone) or may have lost some of it (the marker
  names another Redis process: it restarted, and even with appendonly an fsync every second
  can lose the last writes), everything the claim path needs is rebuilt from the database:
  gold pools, seen sets, live leases and every routed item's free label slots on its tier
  queue. Each project's state is replaced in one MULTI, so no stale lease or slot survives.
- Otherwise, items routed or re-targeted recently get their slots recomputed (a worker that
  died between its commit and its Redis update), and items whose wanted labels are all in but
  whose consensus update was lost get one again.
- Gold labels not yet counted in their annotators' records (their consensus mark or job was
  lost) are counted (`router.gold.record`; exactly once, so a race with the job is harmless).
- Live leases of suspended annotators (a claim that raced the suspension) are released.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from router.consensus.service import release_suspended_leases
from router.db.database import Database, as_utc
from router.db.models import Annotator, Assignment, GoldAnswer, Item, Label, Project, utcnow
from router.gold.record import record_gold_labels
from router.queueing.assignments import AssignmentStore
from router.queueing.jobs import JobQueue

__all__ = ["EPOCH_KEY", "reconcile", "reopen_batch"]

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
        if not jobs.scoring_pending(batch_id):
            jobs.enqueue_scoring(batch_id)
            enqueued += 1

    server = _server_id(jobs.redis)
    epoch = jobs.redis.get(EPOCH_KEY)
    full = epoch is None or (server is not None and epoch.decode() != server)  # type: ignore[union-attr]
    overdue = now - timedelta(seconds=grace_s)
    with db.read() as session:
        if full:
            reopened, stuck = _rebuild(session, store, now, overdue)
        else:
            _restore_gold(session, store)
            since = now - timedelta(seconds=recent_s)
            reopened, stuck = _restore_open_items(session, store, since, overdue)
    for project_id, item_id in stuck:
        jobs.enqueue_consensus(project_id, item_id)
    # Gold labels whose consensus mark was lost (or whose job died for good) are counted here.
    gold = record_gold_labels(db, store, before=overdue)
    # A lease recorded just after its annotator's suspension released the others.
    released = release_suspended_leases(db, store)
    if full:
        jobs.redis.set(EPOCH_KEY, server or now.isoformat())
    return {
        "stranded_batches": len(stranded),
        "enqueued": enqueued,
        "requeued": reopened,
        "consensus_rescheduled": len(stuck),
        "full_rebuild": full,
        "gold_recorded": gold["gold_recorded"],
        "suspended_leases_released": released,
    }


def reopen_batch(db: Database, jobs: JobQueue, store: AssignmentStore, batch_id: str) -> int:
    """Put the batch's routed items back on their queues as the database has them.

    A scoring job run again (its worker died after the commit, before the queue push) calls
    this instead of routing again; OPEN is idempotent, so a plain repeat changes nothing.
    """
    with db.read() as session:
        reopened, stuck = _restore_open_items(session, store, None, utcnow(), batch_id=batch_id)
    for project_id, item_id in stuck:
        jobs.enqueue_consensus(project_id, item_id)
    return reopened


def _server_id(redis: Any) -> str | None:
    """The Redis process's run_id (new on every restart); None where INFO is not served."""
    try:
        return str(redis.info("server")["run_id"])
    except Exception:  # the in-process fakeredis has no INFO: only a missing epoch counts
        return None


def _gold_items(session: Session) -> dict[str, list[str]]:
    """Every project's gold items. Read from the gold answers (one per gold item, written with
    it), not by filtering the whole item table on is_gold."""
    grouped: dict[str, list[str]] = defaultdict(list)
    rows = session.execute(
        select(col(Item.project_id), col(Item.id))
        .select_from(GoldAnswer)
        .join(Item, col(Item.id) == col(GoldAnswer.item_id))
    )
    for project_id, item_id in rows:
        grouped[project_id].append(item_id)
    return grouped


def _restore_gold(session: Session, store: AssignmentStore) -> None:
    for project_id, ids in _gold_items(session).items():
        store.add_gold(project_id, ids)


def _rebuild(
    session: Session, store: AssignmentStore, now: datetime, settled_before: datetime
) -> tuple[int, list[tuple[str, str]]]:
    """Replace every project's Redis state with the one the database implies."""
    gold = _gold_items(session)
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    leases: dict[str, list[tuple[str, str, str, str, float, int]]] = defaultdict(list)
    leased: dict[tuple[str, str], int] = defaultdict(int)
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
    for project_id, annotator_id, item_id, aid, tier, status, expires, priority in rows:
        seen[(project_id, annotator_id)].append(item_id)
        if status == "leased" and as_utc(expires) > now:
            expires_ms = int(as_utc(expires).timestamp() * 1000)
            leases[project_id].append(
                (aid, item_id, annotator_id, tier, priority or 0.0, expires_ms)
            )
            if tier != "gold":
                leased[(project_id, item_id)] += 1
    for (project_id, annotator_id), items in seen.items():
        store.mark_seen(project_id, annotator_id, items)
    opened, stuck = _open_entries(session, None, settled_before, None)
    closed: dict[str, list[str]] = defaultdict(list)
    for project_id, item_id in session.execute(
        select(col(Item.project_id), col(Item.id)).where(
            col(Item.status) == "done", col(Item.is_gold).is_(False)
        )
    ):
        closed[project_id].append(item_id)
    project_ids = set(session.execute(select(col(Project.id))).scalars())
    for project_id in project_ids:
        store.replace_state(
            project_id,
            gold=gold.get(project_id, []),
            leases=leases.get(project_id, []),
            items=[
                (item_id, tier, priority, wanted, leased.get((project_id, item_id), 0))
                for item_id, tier, priority, wanted in opened.get(project_id, [])
            ],
            closed=closed.get(project_id, []),
        )
    return sum(len(v) for v in opened.values()), stuck


def _restore_open_items(
    session: Session,
    store: AssignmentStore,
    since: datetime | None,
    settled_before: datetime,
    *,
    batch_id: str | None = None,
) -> tuple[int, list[tuple[str, str]]]:
    """Recompute free slots of routed items; list those whose consensus update is overdue."""
    opened, stuck = _open_entries(session, since, settled_before, batch_id)
    for project_id, entries in opened.items():
        store.open_items(project_id, entries)
    return sum(len(v) for v in opened.values()), stuck


def _open_entries(
    session: Session, since: datetime | None, settled_before: datetime, batch_id: str | None
) -> tuple[dict[str, list[tuple[str, str, float, int]]], list[tuple[str, str]]]:
    """(item, tier, priority, labels still wanted) of routed items, per project; and those
    whose wanted labels are all in but whose consensus update is overdue."""
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
    if batch_id is not None:
        query = query.where(col(Item.batch_id) == batch_id)
    grouped: dict[str, list[tuple[str, str, float, int]]] = defaultdict(list)
    stuck: list[tuple[str, str]] = []
    result = session.execute(query.execution_options(yield_per=_CHUNK))
    for chunk in result.partitions(_CHUNK):
        labeled = _labels_in_tier(session, [row[1] for row in chunk])
        for project_id, item_id, tier, priority, needed, updated_at in chunk:
            have = labeled.get((item_id, tier), 0)
            wanted = max(0, needed - have)
            grouped[project_id].append((item_id, tier, priority or 0.0, wanted))
            if wanted == 0 and as_utc(updated_at) < settled_before:
                stuck.append((project_id, item_id))
    return dict(grouped), stuck


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
