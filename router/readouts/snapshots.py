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
from router.db.database import Database, as_utc
from router.db.models import Project, ProjectSnapshot, utcnow
from router.projects.service import get_project
from router.queueing.assignments import AssignmentStore
from router.readouts.service import project_agreement, project_readout

__all__ = ["latest_snapshot", "recent_snapshots", "snapshot_of", "take_snapshots"]

log = logging.getLogger(__name__)


def snapshot_of(
    project_id: str,
    readout: dict[str, Any],
    taken_at: datetime,
    *,
    agreement: dict[str, Any] | None,
    agreement_at: datetime | None,
    agreement_labels: int | None = None,
) -> ProjectSnapshot:
    """The row recording one read-out (as `project_readout` returns it) and an agreement (as
    `project_agreement` returns it; None when not computed yet) computed at `agreement_at` over
    `agreement_labels` labels (this read-out's count by default)."""
    items, queues, experts = readout["items"], readout["queues"], readout["experts"]
    found = agreement or {}
    ci = found.get("krippendorff_alpha_ci95") or (None, None)
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
        agreement_alpha=found.get("krippendorff_alpha"),
        agreement_alpha_lo=ci[0],
        agreement_alpha_hi=ci[1],
        agreement_items=int(found.get("items", 0)),
        agreement_at=agreement_at if agreement is not None else None,
        agreement_labels=int(
            readout["labels"]["total"] if agreement_labels is None else agreement_labels
        ),
    )


def _carried(previous: ProjectSnapshot | None) -> dict[str, Any] | None:
    """The previous snapshot's agreement in the read-out's shape (None if it had none)."""
    if previous is None or previous.agreement_at is None:
        return None
    lo, hi = previous.agreement_alpha_lo, previous.agreement_alpha_hi
    return {
        "krippendorff_alpha": previous.agreement_alpha,
        "krippendorff_alpha_ci95": [lo, hi] if lo is not None and hi is not None else None,
        "items": previous.agreement_items,
    }


def _snapshot(
    db: Database,
    store: AssignmentStore,
    project_id: str,
    taken_at: datetime,
    agreement_every_s: float,
) -> ProjectSnapshot:
    readout = project_readout(db, store, project_id, with_agreement=False)
    with db.read() as session:
        previous = session.execute(
            select(ProjectSnapshot)
            .where(col(ProjectSnapshot.project_id) == project_id)
            .order_by(col(ProjectSnapshot.taken_at).desc(), col(ProjectSnapshot.id).desc())
            .limit(1)
        ).scalar_one_or_none()
    carried = _carried(previous)
    last = previous.agreement_at if previous is not None else None
    # Agreement is a bootstrap over every label (seconds on a large project): recomputed only
    # when labels changed, and at most every `agreement_every_s`.
    if (
        previous is None
        or last is None
        or carried is None
        or (
            previous.agreement_labels != int(readout["labels"]["total"])
            and (taken_at - as_utc(last)).total_seconds() >= agreement_every_s
        )
    ):
        return snapshot_of(
            project_id,
            readout,
            taken_at,
            agreement=project_agreement(db, project_id),
            agreement_at=taken_at,
        )
    return snapshot_of(
        project_id,
        readout,
        taken_at,
        agreement=carried,
        agreement_at=last,
        agreement_labels=previous.agreement_labels,
    )


def take_snapshots(
    db: Database,
    store: AssignmentStore,
    *,
    retention_s: float,
    agreement_every_s: float = 0.0,
    now: datetime | None = None,
) -> dict[str, int]:
    """Record every project's read-out, then delete snapshots older than the retention."""
    taken_at = now or utcnow()
    with db.read() as session:
        project_ids = list(session.execute(select(col(Project.id))).scalars())
    rows = []
    failed = 0
    for project_id in project_ids:
        try:
            rows.append(_snapshot(db, store, project_id, taken_at, agreement_every_s))
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
