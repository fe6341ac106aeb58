"""RQ jobs: small functions that take ids, re-read state and return a small dict that is logged."""

from __future__ import annotations

from typing import Any

from router.routing.reconcile import reconcile as reconcile_queues
from router.routing.service import route_batch
from router.runtime import get_runtime

__all__ = ["reconcile", "score_batch"]


def score_batch(batch_id: str) -> dict[str, Any]:
    """Score and route the still-queued items of one ingest batch."""
    rt = get_runtime()
    return route_batch(rt.db, rt.tier_queues, batch_id)


def reconcile() -> dict[str, Any]:
    """Re-enqueue stranded batches and put routed items back on their tier queues."""
    rt = get_runtime()
    s = rt.settings
    return reconcile_queues(
        rt.db,
        rt.jobs,
        rt.tier_queues,
        grace_s=s.reconcile_grace_s,
        recent_s=max(600.0, 4 * s.reconcile_interval_s),
        started_grace_s=float(s.job_timeout_s) + 60.0,
    )
