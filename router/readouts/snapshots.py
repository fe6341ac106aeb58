"""Project snapshots: each project's read-out recorded now and then, the history of the charts.

Nothing else keeps history: queue depths live in Redis and counts are recomputed on request.
The scheduler calls `take_snapshots` every `ROUTER_SNAPSHOT_INTERVAL` seconds; it is also where
agreement over the whole project (a bootstrap) is computed, so that no page view pays for it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database
from router.db.models import Project, ProjectSnapshot, utcnow
from router.projects.service import get_project
from router.queueing.assignments import AssignmentStore
from router.readouts.service import project_readout

__all__ = ["latest_snapshot", "recent_snapshots", "snapshot_of", "take_snapshots"]

log = logging.getLogger(__name__)


def snapshot_of(project_id: str, readout: dict[str, Any], taken_at: datetime) -> ProjectSnapshot:
    """The row recording one read-out (as `project_readout` returns it, with agreement)."""
    items, queues, experts = readout["items"], readout["queues"], readout["experts"]
    agreement = readout["agreement"] or {}
    ci = agreement.get("krippendorff_alpha_ci95") or (None, None)
    return ProjectSnapshot(
        project_id=project_id,
        taken_at=taken_at,
        items_queued=int(items["by_status"].get("queued", 0)),
        items_routed=int(items["by_status"].get("routed", 0)),
        items_done=int(items["by_status"].get("done", 0)),
        queue_crowd=int(queues.get("crowd", 0)),
        queue_expert=int(queues.get("expert", 0)),
        expert_open=int(experts["open"]),
        expert_capacity=int(experts["capacity"]),
        labels=int(readout["labels"]["total"]),
        cost=float(readout["labels"]["total_cost"]),
        agreement_alpha=agreement.get("krippendorff_alpha"),
        agreement_alpha_lo=ci[0],
        agreement_alpha_hi=ci[1],
        agreement_items=int(agreement.get("items", 0)),
    )


def take_snapshots(
    db: Database, store: AssignmentStore, *, retention_s: float, now: datetime | None = None
) -> dict[str, int]:
    """Record every project's read-out, then delete snapshots older than the retention."""
    taken_at = now or utcnow()
    with db.read() as session:
        project_ids = list(session.execute(select(col(Project.id))).scalars())
    rows = []
    failed = 0
    for project_id in project_ids:
        try:
            rows.append(snapshot_of(project_id, project_readout(db, store, project_id), taken_at))
        except Exception:  # one project's failure must not cost the others their history
            log.exception("could not take the snapshot of project %s", project_id)
            failed += 1
    cutoff = taken_at - timedelta(seconds=retention_s)
    with db.session() as session:
        session.add_all(rows)
        result = session.connection().execute(
            delete(ProjectSnapshot).where(col(ProjectSnapshot.taken_at) < cutoff)
        )
    return {"taken": len(rows), "failed": failed, "pruned": int(result.rowcount or 0)}


def recent_snapshots(
    db: Database, actor: Principal, project_id: str, *, limit: int = 240
) -> list[ProjectSnapshot]:
    """The project's latest `limit` snapshots, oldest first (ops of the project, admin)."""
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        get_project(session, actor, project_id)
        newest_first = list(
            session.execute(
                select(ProjectSnapshot)
                .where(col(ProjectSnapshot.project_id) == project_id)
                .order_by(col(ProjectSnapshot.taken_at).desc(), col(ProjectSnapshot.id).desc())
                .limit(limit)
            ).scalars()
        )
    return newest_first[::-1]


def latest_snapshot(db: Database, actor: Principal, project_id: str) -> ProjectSnapshot | None:
    found = recent_snapshots(db, actor, project_id, limit=1)
    return found[0] if found else None
