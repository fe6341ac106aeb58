"""Submitting a label: count it only if its lease still holds a slot, record gold answers."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session, col

from router import audit
from router.auth.principal import Principal
from router.consensus.service import reopen_after_suspension
from router.db.database import Database, as_utc
from router.db.models import Annotator, GoldAnswer, Item, Label, Project, new_id, utcnow
from router.errors import Conflict, InvalidInput
from router.observability import metrics
from router.projects.label_schema import LabelSchema
from router.projects.service import routing_config
from router.quality.alerts import flags_raised_by_gold
from router.quality.rules import GoldRecord, onboarding_verdict, suspension_verdict
from router.queueing.assignments import AssignmentStore
from router.queueing.jobs import JobQueue
from router.tasks.service import load_assignment
from router.webhooks.events import suspended_event
from router.webhooks.outbox import emit

__all__ = ["LabelInput", "submit_label"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LabelInput:
    label: str
    confidence: float | None = None
    rationale: str | None = None
    duration_ms: int | None = None


def submit_label(
    db: Database,
    store: AssignmentStore,
    jobs: JobQueue,
    principal: Principal,
    assignment_id: str,
    x_annotator: str | None,
    body: LabelInput,
    *,
    before_commit: Callable[[Session, dict[str, Any], bool], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a label; returns (label view, created). The same body again returns the first.

    `before_commit(session, view, created)` runs inside the label's transaction (the
    Idempotency-Key response is stored there, so that it commits exactly with the label).
    """
    with db.session() as session:
        assignment = load_assignment(session, principal, assignment_id, x_annotator)
        # The label and the status "labeled" are written in one transaction, so only a
        # labeled assignment can have one: the lookup is skipped on the hot path.
        existing = (
            session.execute(
                select(Label).where(col(Label.assignment_id) == assignment.id)
            ).scalar_one_or_none()
            if assignment.status == "labeled"
            else None
        )
        if existing is not None:
            if _same(existing, body):
                if before_commit is not None:
                    before_commit(session, _view(existing), False)
                return _view(existing), False
            msg = (
                "this assignment already has a different label; a label cannot be changed. "
                "Send exactly the same body to read it back"
            )
            raise Conflict(msg)
        if assignment.status == "released":
            raise Conflict("this assignment was released; claim a new task to label this item")
        # Project, item and the item's gold answer (none for routed work) in one round trip:
        # gold and routed labels issue the same statements.
        project, item, answer = session.execute(
            select(Project, Item, GoldAnswer)
            .join(Item, col(Item.project_id) == col(Project.id))
            .outerjoin(GoldAnswer, col(GoldAnswer.item_id) == col(Item.id))
            .where(col(Item.id) == assignment.item_id)
        ).one()
        schema = LabelSchema.parse(project.label_schema)
        _validate(body, schema)
        outcome = store.consume(project.id, assignment.id, item.id, assignment.tier)
        if not outcome.counted:
            msg = (
                "the lease on this assignment expired and the item was given to someone else, "
                "so this label was not counted; claim a new task"
            )
            raise Conflict(msg)
        try:
            label = Label(
                id=new_id(),
                assignment_id=assignment.id,
                project_id=project.id,
                item_id=item.id,
                annotator_id=assignment.annotator_id,
                label=body.label,
                confidence=body.confidence,
                rationale=body.rationale,
                duration_ms=body.duration_ms,
                rubric_version=project.rubric_version,
                config_version=project.routing_version,
                created_at=utcnow(),
            )
            session.add(label)
            assignment.status = "labeled"
            session.add(assignment)
            suspended = False
            if item.is_gold:
                suspended = _record_gold(session, project, answer, assignment.annotator_id, label)
            else:
                session.execute(
                    update(Item)
                    .where(col(Item.id) == item.id)
                    .values(n_labels=col(Item.n_labels) + 1, updated_at=utcnow())
                )
            session.flush()
            if before_commit is not None:
                before_commit(session, _view(label), True)
        except BaseException:
            if not item.is_gold:  # give the slot back: the label was not stored
                store.return_slot(
                    project.id, item.id, tier=assignment.tier, priority=item.priority or 0.0
                )
            raise
        view = _view(label)
        view_tier = assignment.tier
        project_id, item_id = project.id, item.id
    if suspended:
        # Their labels no longer count: the open items they labeled want a label more.
        try:
            reopen_after_suspension(db, store, assignment.annotator_id)
        except Exception:  # the reconciler recomputes the slots of recently updated items
            log.warning(
                "could not reopen the items of suspended annotator %s", assignment.annotator_id
            )
    # Gold labels are marked too, so that they take the very same path as routed ones (nothing
    # in their timing tells them apart); the consensus job leaves gold items alone.
    try:
        jobs.enqueue_consensus(project_id, item_id)
    except Exception:  # the reconciler re-checks items whose labels are all in
        log.warning("could not schedule consensus for item %s", item_id)
    metrics.LABELS_SUBMITTED.labels(tier=view_tier).inc()
    return view, True


def _record_gold(
    session: Session,
    project: Project,
    answer: GoldAnswer | None,
    annotator_id: str,
    label: Label,
) -> bool:
    """A gold answer updates the annotator's record at once; True if it suspended them.

    The annotator's row was locked (and loaded) with the assignment: no statement here.
    """
    correct = answer is not None and answer.answer == label.label
    annotator = session.get(Annotator, annotator_id)
    if annotator is None:  # deleted under a held lock cannot happen; keep mypy and readers sure
        raise RuntimeError(f"annotator {annotator_id} vanished while locked")
    before = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    annotator.n_gold += 1
    annotator.n_gold_correct += int(correct)
    annotator.updated_at = utcnow()
    config = routing_config(session, project)
    record = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    if annotator.onboarded_at is None and config.gold.onboarding_tasks > 0:
        passed, reason = onboarding_verdict(record, config)
        if passed is True:
            annotator.onboarded_at = utcnow()
            audit.record(
                session,
                None,
                "annotator.onboarded",
                object_type="annotator",
                object_id=annotator.id,
                project_id=project.id,
                detail={"n_gold": record.n_gold, "n_correct": record.n_correct},
            )
        elif passed is False:
            _suspend(session, annotator, project.id, reason)
    if annotator.status == "active":
        suspend, reason = suspension_verdict(record, config)
        if suspend:
            _suspend(session, annotator, project.id, reason)
    flags_raised_by_gold(session, project, annotator, label.id, before, config)
    session.add(annotator)
    return bool(annotator.status != "active")


def _suspend(session: Session, annotator: Annotator, project_id: str, reason: str) -> None:
    annotator.status = "suspended"
    annotator.status_reason = reason
    audit.record(
        session,
        None,
        "annotator.suspended",
        object_type="annotator",
        object_id=annotator.id,
        project_id=project_id,
        detail={"reason": reason, "automatic": True},
    )
    emit(session, project_id, "annotator.suspended", suspended_event(annotator, automatic=True))


def _validate(body: LabelInput, schema: LabelSchema) -> None:
    problems = []
    if schema.index_of(body.label) is None:
        noun = "classes" if schema.kind == "categorical" else "levels"
        problems.append(
            {
                "field": "label",
                "message": f"{body.label!r} is not one of the {noun}: {', '.join(schema.labels)}",
            }
        )
    if body.confidence is not None and not (
        math.isfinite(body.confidence) and 0.0 <= body.confidence <= 1.0
    ):
        problems.append({"field": "confidence", "message": "must be a number in [0, 1]"})
    if body.duration_ms is not None and body.duration_ms < 0:
        problems.append({"field": "duration_ms", "message": "must be >= 0"})
    if body.rationale is not None and len(body.rationale) > 10_000:
        problems.append({"field": "rationale", "message": "at most 10000 characters"})
    if problems:
        raise InvalidInput("the label cannot be accepted as sent", extra=problems)


def _same(label: Label, body: LabelInput) -> bool:
    return (label.label, label.confidence, label.rationale, label.duration_ms) == (
        body.label,
        body.confidence,
        body.rationale,
        body.duration_ms,
    )


def _view(label: Label) -> dict[str, Any]:
    # Nothing about correctness: gold and routed labels answer alike.
    return {
        "id": label.id,
        "assignment_id": label.assignment_id,
        "item_id": label.item_id,
        "label": label.label,
        "confidence": label.confidence,
        "rationale": label.rationale,
        "duration_ms": label.duration_ms,
        "rubric_version": label.rubric_version,
        "created_at": as_utc(label.created_at).isoformat().replace("+00:00", "Z"),
    }
