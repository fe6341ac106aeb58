"""Claiming the next task, releasing it: Redis decides atomically, the database records it."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Annotator, Assignment, Item, Project, new_id
from router.errors import Conflict, NotFound, ServiceUnavailable
from router.observability import metrics
from router.projects.service import get_project, routing_config
from router.quality.alerts import flag_gold_exhausted
from router.queueing.assignments import AssignmentStore, ReapedLease
from router.routing.config import RoutingConfig
from router.tasks.acting import acting_annotator, require_active

__all__ = [
    "Task",
    "gold_odds",
    "mark_expired",
    "next_task",
    "reap_expired_leases",
    "release_task",
]

# From the OS: an annotator must not be able to predict when gold is coming.
_rng = secrets.SystemRandom()


@dataclass(frozen=True, slots=True)
class Task:
    assignment_id: str
    item_id: str
    payload: dict[str, Any]
    label_schema: dict[str, Any]
    rubric_version: str
    lease_expires_at: str


def gold_odds(config: RoutingConfig, annotator: Annotator) -> tuple[float, bool]:
    """(probability of serving gold on this claim, whether only gold may be served)."""
    gold = config.gold
    if gold.onboarding_tasks > 0 and annotator.onboarded_at is None:
        return 1.0, True
    if annotator.n_gold < gold.warmup:
        return gold.new_annotator_rate, False
    return (gold.rate.expert if annotator.tier == "expert" else gold.rate.crowd), False


def next_task(
    db: Database,
    store: AssignmentStore,
    principal: Principal,
    project_id: str,
    x_annotator: str | None,
) -> Task | None:
    """Lease the best item for this annotator and record the assignment; None if none is left."""
    with db.read() as session:
        project = get_project(session, principal, project_id)
        annotator = acting_annotator(session, principal, project_id, x_annotator)
        require_active(annotator)
        config = routing_config(session, project)
    tiers = [annotator.tier]
    if annotator.tier == "expert" and config.experts.take_crowd_work:
        tiers.append("crowd")
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            return _claim_once(db, store, project, annotator, config, tiers)
        except _AlreadyAssigned as exc:
            # Redis handed out an item this annotator already had: its seen set lost the
            # entry (Redis restarted, not yet rebuilt). The database refused the second
            # assignment; remember it in Redis and claim again.
            store.mark_seen(project_id, annotator.id, [exc.item_id])
    raise ServiceUnavailable("the task queue is being rebuilt; retry shortly")


_CLAIM_ATTEMPTS = 5


class _AlreadyAssigned(Exception):
    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


def _claim_once(
    db: Database,
    store: AssignmentStore,
    project: Project,
    annotator: Annotator,
    config: RoutingConfig,
    tiers: list[str],
) -> Task | None:
    project_id = project.id
    odds, gold_only = gold_odds(config, annotator)
    assignment_id = new_id()
    now_ms = int(time.time() * 1000)
    lease_ms = int(config.leases.minutes * 60_000)
    claim = store.claim(
        project_id,
        assignment_id=assignment_id,
        annotator_id=annotator.id,
        tiers=tiers,
        now_ms=now_ms,
        lease_ms=lease_ms,
        want_gold=_rng.random() < odds,
        gold_only=gold_only,
        gold_pick=_rng.random(),
    )
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    expires = now + timedelta(milliseconds=lease_ms)
    try:
        with db.session() as session:
            mark_expired(session, claim.reaped)
            if claim.gold_exhausted and annotator.gold_exhausted_at is None:
                marked = (
                    session.connection()
                    .execute(
                        update(Annotator)
                        .where(
                            col(Annotator.id) == annotator.id,
                            col(Annotator.gold_exhausted_at).is_(None),
                        )
                        .values(gold_exhausted_at=now)
                    )
                    .rowcount
                )
                if marked:  # only the claim that raised the flag tells the hooks
                    flag_gold_exhausted(session, project, annotator, config)
            if claim.item_id is None:
                metrics.LEASES_EXPIRED.inc(len(claim.reaped))
                return None
            item = session.get(Item, claim.item_id)
            if item is None:  # Redis held an item the database no longer has
                raise NotFound(f"item {claim.item_id!r} vanished")
            session.add(
                Assignment(
                    id=assignment_id,
                    project_id=project_id,
                    item_id=item.id,
                    annotator_id=annotator.id,
                    tier=claim.tier,
                    status="leased",
                    config_version=project.routing_version,
                    leased_at=now,
                    lease_expires_at=expires,
                )
            )
            task = _task(assignment_id, item, project, expires)
    except IntegrityError:
        if claim.item_id is None:
            raise
        store.release(project_id, assignment_id)
        raise _AlreadyAssigned(claim.item_id) from None
    except BaseException:
        # Nothing was promised to the client: hand the slot back.
        if claim.item_id is not None:
            store.release(project_id, assignment_id)
        raise
    if claim.reaped:
        metrics.LEASES_EXPIRED.inc(len(claim.reaped))
    if claim.tier == "gold":
        metrics.GOLD_SERVED.labels(annotator_tier=annotator.tier).inc()
    return task


def _task(assignment_id: str, item: Item, project: Project, expires: datetime) -> Task:
    # Gold and routed items take exactly this path: the response cannot tell them apart.
    return Task(
        assignment_id=assignment_id,
        item_id=item.id,
        payload=item.payload,
        label_schema=project.label_schema,
        rubric_version=project.rubric_version,
        lease_expires_at=as_utc(expires).isoformat().replace("+00:00", "Z"),
    )


def mark_expired(session: Session, reaped: list[ReapedLease]) -> None:
    """Record in the database the leases Redis returned to their queues."""
    ids = [r.assignment_id for r in reaped]
    if ids:
        session.execute(
            update(Assignment)
            .where(col(Assignment.id).in_(ids), col(Assignment.status) == "leased")
            .values(status="expired")
        )


def reap_expired_leases(db: Database, store: AssignmentStore) -> int:
    """Return every lapsed lease's slot to its queue and record the expiry (the reaper pass)."""
    now_ms = int(time.time() * 1000)
    with db.read() as session:
        project_ids = list(session.execute(select(col(Project.id))).scalars())
    total = 0
    for project_id in project_ids:
        while True:
            reaped = store.reap(project_id, now_ms, limit=1000)
            if not reaped:
                break
            with db.session() as session:
                mark_expired(session, reaped)
            total += len(reaped)
            metrics.LEASES_EXPIRED.inc(len(reaped))
    return total


def release_task(
    db: Database,
    store: AssignmentStore,
    principal: Principal,
    assignment_id: str,
    x_annotator: str | None,
) -> dict[str, Any]:
    """Give the item back to its queue at its priority; the annotator will not get it again."""
    with db.session() as session:
        assignment = load_assignment(session, principal, assignment_id, x_annotator)
        if assignment.status == "labeled":
            raise Conflict("this assignment is already labeled; there is nothing to release")
        if assignment.status == "leased":
            store.release(assignment.project_id, assignment.id)
            assignment.status = "released"
            session.add(assignment)
        return {"assignment_id": assignment.id, "status": assignment.status}


def load_assignment(
    session: Session, principal: Principal, assignment_id: str, x_annotator: str | None
) -> Assignment:
    """The assignment if the caller is its annotator (or a tool acting for it), else 404.

    The row stays locked until the transaction ends, so that a label or release sent twice at
    once (a tool retrying) is decided once, the second seeing what the first did. The
    annotator's row is locked too, so that a label waits for a suspension being committed by
    the gold-record job (`router.gold.record`) and then sees it.
    """
    assignment = session.get(Assignment, assignment_id, with_for_update=True)
    missing = NotFound(f"assignment {assignment_id!r} not found")
    if assignment is None:
        raise missing
    try:
        annotator = acting_annotator(
            session, principal, assignment.project_id, x_annotator, lock=True
        )
    except NotFound:
        raise missing from None
    if annotator.id != assignment.annotator_id:
        raise missing
    require_active(annotator)
    return assignment
