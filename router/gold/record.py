"""Counting gold answers in the annotators' records, off the label request's path.

A gold label is stored exactly like a routed one (the request does the same database and Redis
work, so nothing in its timing gives gold away) and marks its item for the consensus job. That
job, and the reconciler for any label whose job was lost, call `record_gold_labels`: it applies
each unrecorded gold label to its annotator's record (counters, onboarding and suspension
verdicts, quality flags, audit events, webhook events) and stamps `label.gold_recorded_at` in the
same transaction, under the annotator's row lock. A label is therefore counted exactly once,
whether the job runs twice, concurrently or dies midway (its transaction rolls back), and one
annotator's gold labels are counted in the order they were given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, select
from sqlmodel import Session, col

if TYPE_CHECKING:
    from sqlalchemy import Table

from router import audit
from router.consensus.service import reopen_after_suspension
from router.db.bulk import id_list, in_id_list
from router.db.database import Database
from router.db.models import Annotator, GoldAnswer, Item, Label, Project, utcnow
from router.projects.service import routing_config
from router.quality.alerts import flags_raised_by_gold
from router.quality.rules import GoldRecord, onboarding_verdict, suspension_verdict
from router.queueing.assignments import AssignmentStore
from router.routing.config import RoutingConfig
from router.webhooks.events import suspended_event
from router.webhooks.outbox import emit

__all__ = ["record_gold_labels"]

_LABEL = cast("Table", Label.__table__)  # type: ignore[attr-defined]
_ITEM = cast("Table", Item.__table__)  # type: ignore[attr-defined]
_UNRECORDED = (
    select(_LABEL.c.annotator_id)
    .select_from(_LABEL.join(_ITEM, _ITEM.c.id == _LABEL.c.item_id))
    .where(_ITEM.c.is_gold.is_(True), _LABEL.c.gold_recorded_at.is_(None))
    .distinct()
)
"""The annotators with unrecorded gold labels."""
_UNRECORDED_OF_ITEMS = {
    postgresql: _UNRECORDED.where(in_id_list(_LABEL.c.item_id, "ids", postgresql=postgresql))
    for postgresql in (False, True)
}
"""The same, among the labels of the listed items (per dialect: see `in_id_list`)."""

log = logging.getLogger(__name__)


def record_gold_labels(
    db: Database,
    store: AssignmentStore,
    *,
    item_ids: Sequence[str] | None = None,
    before: datetime | None = None,
) -> dict[str, int]:
    """Count the unrecorded gold labels (of these items, or given before `before`, or all).

    Returns {"gold_recorded": labels counted, "suspended": annotators suspended}. Every
    annotator with such a label has all their unrecorded gold labels counted, oldest first.
    """
    if item_ids is not None and not item_ids:
        return {"gold_recorded": 0, "suspended": 0}
    postgresql = not db.is_sqlite
    params: dict[str, Any] = {}
    if item_ids is not None:
        query = _UNRECORDED_OF_ITEMS[postgresql]
        params["ids"] = id_list(sorted(set(item_ids)), postgresql=postgresql)
    else:
        query = _UNRECORDED
    if before is not None:
        query = query.where(_LABEL.c.created_at < bindparam("before"))
        params["before"] = before
    # One statement, no transaction around it (on PostgreSQL: no BEGIN and ROLLBACK round
    # trips); the consensus job asks this on every run, nearly always to find nobody.
    with db.statements(write=False) as conn:
        annotator_ids = sorted(conn.execute(query, params).scalars())
    recorded = suspended = 0
    for annotator_id in annotator_ids:
        n, newly_suspended = _record_annotator(db, annotator_id)
        recorded += n
        if newly_suspended:
            suspended += 1
            # Their labels no longer count: the open items they labeled want a label more.
            try:
                reopen_after_suspension(db, store, annotator_id)
            except Exception:  # the reconciler recomputes the slots of recently updated items
                log.warning("could not reopen the items of suspended annotator %s", annotator_id)
    return {"gold_recorded": recorded, "suspended": suspended}


def _record_annotator(db: Database, annotator_id: str) -> tuple[int, bool]:
    """Count one annotator's unrecorded gold labels in one transaction; (counted, suspended)."""
    with db.session() as session:
        # The row lock serializes concurrent runs: the second sees the labels stamped.
        annotator = session.execute(
            select(Annotator).where(col(Annotator.id) == annotator_id).with_for_update()
        ).scalar_one_or_none()
        if annotator is None:
            return 0, False
        rows = session.execute(
            select(Label, GoldAnswer)
            .join(Item, col(Item.id) == col(Label.item_id))
            .outerjoin(GoldAnswer, col(GoldAnswer.item_id) == col(Item.id))
            .where(
                col(Label.annotator_id) == annotator_id,
                col(Item.is_gold).is_(True),
                col(Label.gold_recorded_at).is_(None),
            )
            .order_by(col(Label.created_at), col(Label.id))
        ).all()
        if not rows:
            return 0, False
        was_active = annotator.status == "active"
        project = session.get(Project, annotator.project_id)
        if project is None:  # an annotator's project is never deleted
            raise RuntimeError(f"project {annotator.project_id} of {annotator_id} is missing")
        config = routing_config(session, project)
        now = utcnow()
        for label, answer in rows:
            _apply(session, project, config, annotator, label, answer)
            label.gold_recorded_at = now
            session.add(label)
        annotator.updated_at = now
        session.add(annotator)
        return len(rows), was_active and annotator.status != "active"


def _apply(
    session: Session,
    project: Project,
    config: RoutingConfig,
    annotator: Annotator,
    label: Label,
    answer: GoldAnswer | None,
) -> None:
    """One gold answer's effect on the record: counters, verdicts, flags."""
    correct = answer is not None and answer.answer == label.label
    before = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    annotator.n_gold += 1
    annotator.n_gold_correct += int(correct)
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
        elif passed is False and annotator.status == "active":
            _suspend(session, annotator, project.id, reason)
    if annotator.status == "active":
        suspend, reason = suspension_verdict(record, config)
        if suspend:
            _suspend(session, annotator, project.id, reason)
    flags_raised_by_gold(session, project, annotator, label.id, before, config)


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
