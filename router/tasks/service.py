"""Claiming the next task, releasing it: Redis decides atomically, the database records it."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    bindparam,
    false,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Annotator, Assignment, Item, Project, new_id
from router.errors import Conflict, NotFound, ServiceUnavailable
from router.observability import metrics
from router.projects.label_schema import LabelSchema
from router.projects.service import routing_config_of
from router.quality.alerts import flag_gold_exhausted
from router.queueing.assignments import AssignmentStore, Claim, ReapedLease
from router.ratelimit.limiter import RateTicket
from router.routing.config import AssistConfig, RoutingConfig
from router.tasks.acting import acting_annotator, check_acting, require_active
from router.tasks.assist import suggestion_for
from router.tasks.claimants import claimants

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
    suggestion: dict[str, str] | None = None


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
    rate: RateTicket | None = None,
) -> Task | None:
    """Lease the best item for this annotator and record the assignment; None if none is left.

    `rate` counts the request against its key's limit in the claim's own Redis call (429
    over it, with nothing claimed)."""
    project, annotator = _claimant(db, principal, project_id, x_annotator)
    require_active(annotator)
    config = routing_config_of(db, project)
    tiers = [annotator.tier]
    if annotator.tier == "expert" and config.experts.take_crowd_work:
        tiers.append("crowd")
    for attempt in range(_CLAIM_ATTEMPTS):
        try:
            # The request is counted once, by its first attempt.
            rate_now = rate if attempt == 0 else None
            return _claim_once(db, store, project, annotator, config, tiers, rate_now)
        except _AlreadyAssigned as exc:
            # Redis handed out an item this annotator already had: its seen set lost the
            # entry (Redis restarted, not yet rebuilt). The database refused the second
            # assignment; remember it in Redis and claim again.
            store.mark_seen(project_id, annotator.id, [exc.item_id])
    raise ServiceUnavailable("the task queue is being rebuilt; retry shortly")


_CLAIM_ATTEMPTS = 5

# The hot statements of the claim are Core: an ORM statement costs several times the CPU
# of the round trip it makes.
_PROJECT = cast("Table", Project.__table__)  # type: ignore[attr-defined]
_ANNOTATOR = cast("Table", Annotator.__table__)  # type: ignore[attr-defined]
_ITEM = cast("Table", Item.__table__)  # type: ignore[attr-defined]
_ASSIGNMENT = cast("Table", Assignment.__table__)  # type: ignore[attr-defined]


def _claimant_query(by: ColumnElement[bool]) -> Select[Any]:
    on = (_ANNOTATOR.c.project_id == _PROJECT.c.id) & by
    return (
        select(
            *(c.label("p_" + c.name) for c in _PROJECT.c),
            *(c.label("a_" + c.name) for c in _ANNOTATOR.c),
        )
        .select_from(_PROJECT.outerjoin(_ANNOTATOR, on))
        .where(_PROJECT.c.id == bindparam("project_id"))
    )


# Built once: a statement built per call costs more CPU than its round trip.
_CLAIMANT_BY_ID = _claimant_query(_ANNOTATOR.c.id == bindparam("annotator"))
_CLAIMANT_BY_EXTERNAL_ID = _claimant_query(_ANNOTATOR.c.external_id == bindparam("annotator"))
_PROJECT_ONLY = _claimant_query(false())
# With model-assisted labeling on: the payload and the item's committee; gold and routed
# items alike.
_ITEM_WITH_COMMITTEE = select(_ITEM.c.payload, _ITEM.c.committee).where(
    _ITEM.c.id == bindparam("item_id")
)
_INSERT_ASSIGNMENT = insert(_ASSIGNMENT)
_ASSIGNMENT_VALUES = [c.name for c in _ASSIGNMENT.c if c.name != "item_id"]
# Without model-assisted labeling: the assignment inserted and the item's payload read in one
# statement; no row when the item is gone (Redis held an item the database no longer has).
_INSERT_ASSIGNMENT_READ_PAYLOAD = (
    insert(_ASSIGNMENT)
    .from_select(
        ["item_id", *_ASSIGNMENT_VALUES],
        select(
            _ITEM.c.id,
            *(bindparam(name, type_=_ASSIGNMENT.c[name].type) for name in _ASSIGNMENT_VALUES),
        ).where(_ITEM.c.id == bindparam("item_id")),
    )
    .returning(select(_ITEM.c.payload).where(_ITEM.c.id == bindparam("item_id")).scalar_subquery())
)


def _claimant(
    db: Database, principal: Principal, project_id: str, x_annotator: str | None
) -> tuple[Project, Annotator]:
    """The project and the annotator the caller acts for, in one statement (404/403 as
    `get_project` then `acting_annotator` would refuse)."""
    principal.require_project(project_id)
    if principal.role is Role.ANNOTATOR:
        query, kind, annotator_key = _CLAIMANT_BY_ID, "id", principal.annotator_id
    elif principal.role in (Role.TOOL, Role.ADMIN) and x_annotator:
        query, kind, annotator_key = _CLAIMANT_BY_EXTERNAL_ID, "external_id", x_annotator
    else:  # may act for no one: `check_acting` says why, once the project is known to exist
        query, kind, annotator_key = _PROJECT_ONLY, "none", None
    key = (project_id, kind, annotator_key)
    # Read at most once a second per process (router/tasks/claimants.py says what that means).
    hit = claimants.get(db, key)
    if hit is not None:
        project, annotator = hit
    else:
        generation = claimants.generation()
        params = {"project_id": project_id, "annotator": annotator_key}
        with db.statements(write=False) as conn:
            row = conn.execute(query, params).mappings().first()
        if row is None:
            raise NotFound(f"project {project_id!r} not found")
        # Plain holders of the row's values (never added to a session).
        project = Project.model_construct(**{c.name: row["p_" + c.name] for c in _PROJECT.c})
        annotator = (
            Annotator.model_construct(**{c.name: row["a_" + c.name] for c in _ANNOTATOR.c})
            if row["a_id"] is not None
            else None
        )
        claimants.put(db, key, generation, project, annotator)
    return project, check_acting(principal, project_id, x_annotator, annotator)


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
    rate: RateTicket | None,
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
        rate=rate,
    )
    if claim.retry_after_ms is not None and rate is not None:
        raise rate.refusal(claim.retry_after_ms)
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    expires = now + timedelta(milliseconds=lease_ms)
    # By the annotator's tier, never the claim's: gold and routed work look alike.
    assist = (
        config.assist if config.assist.enabled and annotator.tier in config.assist.tiers else None
    )
    try:
        if claim.gold_exhausted and annotator.gold_exhausted_at is None:
            # Rare: the flag and its event are written in one transaction with the claim.
            with db.session() as session:
                _flag_gold_exhausted(session, project, annotator, config, now)
                task = _record_claim(
                    session.connection(),
                    claim,
                    project,
                    annotator,
                    assignment_id,
                    now,
                    expires,
                    assist,
                )
        else:
            # Each statement is its own unit of change (autocommit on PostgreSQL): marking
            # the reaped leases expired, then the assignment.
            with db.statements(write=True) as conn:
                task = _record_claim(
                    conn, claim, project, annotator, assignment_id, now, expires, assist
                )
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


def _flag_gold_exhausted(
    session: Session, project: Project, annotator: Annotator, config: RoutingConfig, now: datetime
) -> None:
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


def _record_claim(
    conn: Connection,
    claim: Claim,
    project: Project,
    annotator: Annotator,
    assignment_id: str,
    now: datetime,
    expires: datetime,
    assist: AssistConfig | None,
) -> Task | None:
    """Mark the reaped leases expired, read the item and insert its assignment."""
    mark_expired(conn, claim.reaped)
    if claim.item_id is None:
        return None
    values = {
        "id": assignment_id,
        "project_id": project.id,
        "item_id": claim.item_id,
        "annotator_id": annotator.id,
        "tier": claim.tier,
        "status": "leased",
        "config_version": project.routing_version,
        "leased_at": now,
        "lease_expires_at": expires,
        "suggestion": None,
    }
    suggestion = None
    if assist is None:
        payload = conn.execute(_INSERT_ASSIGNMENT_READ_PAYLOAD, values).scalar_one_or_none()
    else:
        row = conn.execute(_ITEM_WITH_COMMITTEE, {"item_id": claim.item_id}).one_or_none()
        payload = row.payload if row is not None else None
        if row is not None:
            labels = LabelSchema.parse(project.label_schema).labels
            predictions = [
                (m["model"], m["model_version"], m["probs"]) for m in row.committee or ()
            ]
            suggestion = suggestion_for(predictions, labels, assist)
            conn.execute(_INSERT_ASSIGNMENT, {**values, "suggestion": suggestion})
    if payload is None:  # Redis held an item the database no longer has
        raise NotFound(f"item {claim.item_id!r} vanished")
    return _task(assignment_id, claim.item_id, payload, project, expires, suggestion)


def _task(
    assignment_id: str,
    item_id: str,
    payload: dict[str, Any],
    project: Project,
    expires: datetime,
    suggestion: dict[str, str] | None = None,
) -> Task:
    # Gold and routed items take exactly this path: the response cannot tell them apart.
    return Task(
        assignment_id=assignment_id,
        item_id=item_id,
        payload=payload,
        label_schema=project.label_schema,
        rubric_version=project.rubric_version,
        lease_expires_at=as_utc(expires).isoformat().replace("+00:00", "Z"),
        suggestion=suggestion,
    )


def mark_expired(session: Session | Connection, reaped: list[ReapedLease]) -> None:
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
        conn = session.connection()
        assignment = load_assignment(conn, principal, assignment_id, x_annotator).assignment
        status = assignment.status
        if status == "labeled":
            raise Conflict("this assignment is already labeled; there is nothing to release")
        if status == "leased":
            store.release(assignment.project_id, assignment.id)
            status = "released"
            conn.execute(_RELEASE, {"b_assignment": assignment.id})
        return {"assignment_id": assignment.id, "status": status}


@dataclass(frozen=True, slots=True)
class HeldAssignment:
    """An assignment locked for its label or release, with what a label needs of its item
    and project (read in the same statement)."""

    assignment: Assignment
    """A plain holder of the row's values (never added to a session)."""
    label_schema: dict[str, Any]
    rubric_version: str
    routing_version: int
    is_gold: bool
    priority: float | None


_HELD = (
    select(
        *(c.label("s_" + c.name) for c in _ASSIGNMENT.c),
        *(c.label("a_" + c.name) for c in _ANNOTATOR.c),
        _PROJECT.c.label_schema,
        _PROJECT.c.rubric_version,
        _PROJECT.c.routing_version,
        _ITEM.c.is_gold,
        _ITEM.c.priority,
    )
    .select_from(
        _ASSIGNMENT.join(_ANNOTATOR, _ANNOTATOR.c.id == _ASSIGNMENT.c.annotator_id)
        .join(_ITEM, _ITEM.c.id == _ASSIGNMENT.c.item_id)
        .join(_PROJECT, _PROJECT.c.id == _ASSIGNMENT.c.project_id)
    )
    .where(_ASSIGNMENT.c.id == bindparam("assignment_id"))
    # FOR NO KEY UPDATE of the assignment and the annotator only: it excludes a second label
    # or release of this assignment, and lets the foreign-key checks of inserts through.
    .with_for_update(key_share=True, of=[_ASSIGNMENT, _ANNOTATOR])
)
_RELEASE = (
    update(_ASSIGNMENT)
    .where(_ASSIGNMENT.c.id == bindparam("b_assignment"))
    .values(status="released")
)


def load_assignment(
    conn: Connection, principal: Principal, assignment_id: str, x_annotator: str | None
) -> HeldAssignment:
    """The assignment if the caller is its annotator (or a tool acting for it), else 404.

    The row stays locked until the transaction ends, so that a label or release sent twice at
    once (a tool retrying) is decided once, the second seeing what the first did. The
    annotator's row is locked too, so that a label waits for a suspension being committed by
    the gold-record job (`router.gold.record`) and then sees it. One Core statement reads and
    locks both, and reads the item's and project's columns a label needs.
    """
    row = conn.execute(_HELD, {"assignment_id": assignment_id}).mappings().first()
    missing = NotFound(f"assignment {assignment_id!r} not found")
    if row is None:
        raise missing
    assignment = Assignment.model_construct(**{c.name: row["s_" + c.name] for c in _ASSIGNMENT.c})
    annotator = Annotator.model_construct(**{c.name: row["a_" + c.name] for c in _ANNOTATOR.c})
    if _acts_for(principal, x_annotator, assignment, annotator):
        annotator = check_acting(principal, assignment.project_id, x_annotator, annotator)
        require_active(annotator)
        return HeldAssignment(
            assignment,
            row["label_schema"],
            row["rubric_version"],
            row["routing_version"],
            row["is_gold"],
            row["priority"],
        )
    # Not the caller's assignment: refuse exactly as reading the caller's annotator would.
    try:
        acting_annotator(conn, principal, assignment.project_id, x_annotator)
    except NotFound:
        raise missing from None
    raise missing


def _acts_for(
    principal: Principal, x_annotator: str | None, assignment: Assignment, annotator: Annotator
) -> bool:
    """Whether the assignment's annotator is the one the caller acts for."""
    if principal.role is not Role.ADMIN and principal.project_id != assignment.project_id:
        return False
    if principal.role is Role.ANNOTATOR:
        return principal.annotator_id == annotator.id
    return principal.role in (Role.TOOL, Role.ADMIN) and x_annotator == annotator.external_id
