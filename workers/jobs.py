"""RQ jobs: small functions that take ids, re-read state and return a small dict that is logged."""

from __future__ import annotations

from typing import Any

from router.consensus.service import update_items
from router.quality.refit import due_projects
from router.quality.refit import refit_project as refit_project_quality
from router.routing.reconcile import reconcile as reconcile_queues
from router.routing.service import route_batch
from router.routing.versions import reroute_project as reroute_project_items
from router.runtime import get_runtime
from router.tasks.service import reap_expired_leases

__all__ = [
    "promote_retries",
    "reap_leases",
    "reconcile",
    "refit_quality",
    "reroute_project",
    "schedule_refits",
    "score_batch",
    "update_consensus",
]

_CONSENSUS_BATCH = 500


def score_batch(batch_id: str) -> dict[str, Any]:
    """Score and route the still-queued items of one ingest batch."""
    rt = get_runtime()
    return route_batch(rt.db, rt.assignments, batch_id)


def reroute_project(project_id: str, version: int) -> dict[str, Any]:
    """Re-route the project's routed items nobody has worked on yet under config `version`."""
    rt = get_runtime()
    return reroute_project_items(rt.db, rt.assignments, project_id, version)


def reconcile() -> dict[str, Any]:
    """Re-enqueue stranded batches and put routed items back on their tier queues."""
    rt = get_runtime()
    s = rt.settings
    return reconcile_queues(
        rt.db,
        rt.jobs,
        rt.assignments,
        grace_s=s.reconcile_grace_s,
        recent_s=max(600.0, 4 * s.reconcile_interval_s),
        started_grace_s=float(s.job_timeout_s) + 60.0,
    )


def update_consensus() -> dict[str, int]:
    """Drain the pending consensus marks in batches until none is left."""
    rt = get_runtime()
    totals: dict[str, int] = {}
    while True:
        refs = rt.jobs.take_consensus_marks(_CONSENSUS_BATCH)
        if refs:
            for action, n in update_items(rt.db, rt.assignments, refs).items():
                totals[action] = totals.get(action, 0) + n
            continue
        if not rt.jobs.finish_consensus_run():
            return totals


def reap_leases() -> dict[str, int]:
    """Return lapsed leases to their queues."""
    rt = get_runtime()
    return {"expired": reap_expired_leases(rt.db, rt.assignments)}


def promote_retries() -> dict[str, int]:
    """Put failed jobs whose retry back-off has passed back on the queue."""
    return {"promoted": get_runtime().jobs.promote_due_retries()}


def refit_quality(project_id: str) -> dict[str, Any]:
    """Refit the project's Dawid-Skene annotator models over all its counted labels."""
    return refit_project_quality(get_runtime().db, project_id)


def schedule_refits() -> dict[str, int]:
    """Enqueue a refit of every project with new labels whose refit interval has passed."""
    rt = get_runtime()
    enqueued = 0
    for project_id in due_projects(rt.db):
        enqueued += rt.jobs.enqueue_refit(project_id)[1]
    return {"refits_enqueued": enqueued}
