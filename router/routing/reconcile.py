"""The reconciler: makes Redis agree with the database again after any failure.

- Items stored but never scored (Redis was down at ingest, a job was lost) get a scoring job.
- Routed items missing from their tier queue are put back: all of them when Redis lost its
  data (the epoch marker is gone), otherwise those routed recently (a worker that died between
  its commit and its queue push).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from router.db.database import Database
from router.db.models import Item, utcnow
from router.queueing.jobs import JobQueue
from router.queueing.tier_queues import TierQueues

__all__ = ["EPOCH_KEY", "reconcile"]

EPOCH_KEY = "lr:epoch"
"""Set once the tier queues were rebuilt from the database; gone means Redis lost its data."""
_PUSH_CHUNK = 5_000


def reconcile(
    db: Database,
    jobs: JobQueue,
    tier_queues: TierQueues,
    *,
    grace_s: float,
    recent_s: float,
    started_grace_s: float,
) -> dict[str, Any]:
    now = utcnow()
    enqueued = 0
    with db.read() as session:
        batches = session.execute(
            select(col(Item.batch_id))
            .where(
                col(Item.status) == "queued",
                col(Item.created_at) < now - timedelta(seconds=grace_s),
            )
            .distinct()
        ).scalars()
        stranded = list(batches)
    for batch_id in stranded:
        if not jobs.scoring_pending(batch_id, started_grace_s=started_grace_s):
            jobs.enqueue_scoring(batch_id)
            enqueued += 1

    full = not jobs.redis.exists(EPOCH_KEY)
    query = select(col(Item.project_id), col(Item.tier), col(Item.id), col(Item.priority)).where(
        col(Item.status) == "routed"
    )
    if not full:
        query = query.where(col(Item.routed_at) >= now - timedelta(seconds=recent_s))
    pushed = 0
    with db.read() as session:
        result = session.execute(query.execution_options(yield_per=_PUSH_CHUNK))
        for chunk in result.partitions(_PUSH_CHUNK):
            grouped: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
            for project_id, tier, item_id, priority in chunk:
                grouped[(project_id, tier)].append((item_id, priority or 0.0))
            pipe = tier_queues.pipeline()
            for (project_id, tier), entries in grouped.items():
                tier_queues.push(project_id, tier, entries, pipe=pipe)
            pipe.execute()
            pushed += len(chunk)
    if full:
        jobs.redis.set(EPOCH_KEY, now.isoformat())
    return {
        "stranded_batches": len(stranded),
        "enqueued": enqueued,
        "requeued": pushed,
        "full_rebuild": full,
    }
