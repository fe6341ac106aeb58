"""RQ jobs: small functions that take ids, re-read state and return a small dict that is logged."""

from __future__ import annotations

from typing import Any

from router.consensus.service import update_items
from router.idempotency.store import purge_expired
from router.readouts.snapshots import take_snapshots
from router.routing.reconcile import reconcile as reconcile_queues
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
    "reroute_project",
    "schedule_webhooks",
    "score_batch",
    "snapshot_projects",
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
