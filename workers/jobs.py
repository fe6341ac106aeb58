"""RQ jobs: small functions that take ids, re-read state and return a small dict that is logged."""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from router.consensus.service import relabel_settled, update_items
from router.gold.record import record_gold_labels
from router.idempotency.store import purge_expired
from router.quality.refit import due_projects
from router.quality.refit import refit_project as refit_project_quality
from router.readouts.snapshots import take_snapshots
from router.routing.reconcile import reconcile as reconcile_queues
from router.routing.reconcile import reopen_batch
from router.routing.service import route_batch
from router.routing.versions import reroute_project as reroute_project_items
from router.runtime import get_runtime
from router.tasks.service import reap_expired_leases
from router.webhooks.delivery import deliver_due, has_due

__all__ = [
    "deliver_webhooks",
    "promote_retries",
    "purge_idempotency_keys",
    "reap_leases",
    "reconcile",
    "refit_quality",
    "reroute_project",
    "rescue_jobs",
    "schedule_refits",
    "schedule_webhooks",
    "score_batch",
    "snapshot_projects",
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

    The marked gold items' new labels are counted in their annotators' records (exactly once:
    `router.gold.record`); the other items get their consensus updated.

    Marks are acknowledged only after their update committed: a run that dies leaves them
    for the next run, and running an update twice changes nothing the second time.
    """
    rt = get_runtime()
    job = get_current_job()
    totals: dict[str, int] = {}
    marks = rt.jobs.take_consensus_marks(_CONSENSUS_BATCH)
    while True:
        if marks:
            refs = [(m.project_id, m.item_id) for m in marks]
            # Gold labels first: a suspension they bring stops the annotator's labels counting.
            gold = record_gold_labels(rt.db, rt.assignments, item_ids=[m.item_id for m in marks])
            for key, n in gold.items():
                if n:
                    totals[key] = totals.get(key, 0) + n
            for action, n in update_items(rt.db, rt.assignments, refs).items():
                totals[action] = totals.get(action, 0) + n
            # Acknowledged, and the next batch taken, in one round trip.
            marks = rt.jobs.ack_and_take_consensus_marks(marks, _CONSENSUS_BATCH)
            continue
        if not rt.jobs.finish_consensus_run(job.id if job is not None else None):
            return totals
        marks = rt.jobs.take_consensus_marks(_CONSENSUS_BATCH)


def reap_leases() -> dict[str, int]:
    """Return lapsed leases to their queues."""
    rt = get_runtime()
    return {"expired": reap_expired_leases(rt.db, rt.assignments)}


def promote_retries() -> dict[str, int]:
    """Put failed jobs whose retry back-off has passed back on the queue."""
    return {"promoted": get_runtime().jobs.promote_due_retries()}


def snapshot_projects() -> dict[str, int]:
    """Record every project's read-out for the dashboard's charts; prune old snapshots."""
    rt = get_runtime()
    s = rt.settings
    return take_snapshots(
        rt.db,
        rt.assignments,
        retention_s=s.snapshot_retention_s,
        agreement_every_s=s.snapshot_agreement_interval_s,
    )


def deliver_webhooks() -> dict[str, int]:
    """Send every due webhook delivery (signed, one attempt each), recording the outcomes."""
    rt = get_runtime()
    try:
        # Leave time within the job's timeout to record the last batch's outcomes.
        budget = max(1.0, rt.settings.job_timeout_s / 2 - rt.settings.webhooks.timeout_s)
        return deliver_due(rt.db, rt.settings.webhooks, budget_s=budget)
    finally:
        rt.jobs.finish_webhook_run()


def schedule_webhooks() -> dict[str, int]:
    """Enqueue a delivery run when a delivery is due (first attempts and retries alike)."""
    rt = get_runtime()
    if not has_due(rt.db):
        return {"enqueued": 0}
    return {"enqueued": int(rt.jobs.enqueue_webhook_delivery())}


def purge_idempotency_keys() -> dict[str, int]:
    """Delete the stored Idempotency-Key responses past their expiry."""
    return {"purged": purge_expired(get_runtime().db)}


def rescue_jobs() -> dict[str, int]:
    """Run again the jobs whose worker died; start a consensus run for orphaned marks."""
    rt = get_runtime()
    rescued = rt.jobs.rescue_abandoned()
    return {"rescued": rescued, "consensus_started": int(rt.jobs.ensure_consensus_job())}


def refit_quality(project_id: str) -> dict[str, Any]:
    """Refit the project's Dawid-Skene annotator models over all its counted labels, then,
    under ``consensus.relabel_after_refit``, revise its settled items' labels with them."""
    db = get_runtime().db
    summary = refit_project_quality(db, project_id)
    relabel = relabel_settled(db, project_id)
    if relabel:
        summary["relabel"] = relabel
    return summary


def schedule_refits() -> dict[str, int]:
    """Enqueue a refit of every project with new labels whose refit interval has passed."""
    rt = get_runtime()
    enqueued = 0
    for project_id in due_projects(rt.db):
        enqueued += rt.jobs.enqueue_refit(project_id)[1]
    return {"refits_enqueued": enqueued}
