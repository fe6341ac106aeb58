"""RQ jobs: small functions that take ids, re-read state and return a small dict that is logged."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from router.consensus.service import update_items
from router.routing.reconcile import reconcile as reconcile_queues
from router.routing.reconcile import reopen_batch
from router.routing.service import route_batch
from router.routing.versions import reroute_project as reroute_project_items
from router.runtime import get_runtime
from router.tasks.service import reap_expired_leases

__all__ = [
    "promote_retries",
    "reap_leases",
    "reconcile",
    "reroute_project",
    "rescue_jobs",
    "score_batch",
    "update_consensus",
]

_CONSENSUS_BATCH = 500


def score_batch(batch_id: str) -> dict[str, Any]:
    """Score and route the still-queued items of one ingest batch.

    Run again after its worker died, it finds nothing queued and puts the batch's routed
    items back on their queues instead (the death may have come between commit and push).
    """
    rt = get_runtime()
    result = route_batch(rt.db, rt.assignments, batch_id)
    if not result["routed"]:
        result["reopened"] = reopen_batch(rt.db, rt.jobs, rt.assignments, batch_id)
    return result


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
    )


def update_consensus() -> dict[str, int]:
    """Drain the pending consensus marks in batches until none is left.

    Marks are acknowledged only after their update committed: a run that dies leaves them
    for the next run, and running an update twice changes nothing the second time.
    """
    rt = get_runtime()
    job = get_current_job()
    totals: dict[str, int] = {}
    while True:
        marks = rt.jobs.take_consensus_marks(_CONSENSUS_BATCH)
        if marks:
            refs = [(m.project_id, m.item_id) for m in marks]
            for action, n in update_items(rt.db, rt.assignments, refs).items():
                totals[action] = totals.get(action, 0) + n
            rt.jobs.ack_consensus_marks(marks)
            continue
        if not rt.jobs.finish_consensus_run(job.id if job is not None else None):
            return totals


def reap_leases() -> dict[str, int]:
    """Return lapsed leases to their queues."""
    rt = get_runtime()
    return {"expired": reap_expired_leases(rt.db, rt.assignments)}


def promote_retries() -> dict[str, int]:
    """Put failed jobs whose retry back-off has passed back on the queue."""
    return {"promoted": get_runtime().jobs.promote_due_retries()}


def rescue_jobs() -> dict[str, int]:
    """Run again the jobs whose worker died; start a consensus run for orphaned marks."""
    rt = get_runtime()
    rescued = rt.jobs.rescue_abandoned()
    return {"rescued": rescued, "consensus_started": int(rt.jobs.ensure_consensus_job())}
