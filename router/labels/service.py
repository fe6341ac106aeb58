"""Submitting a label: count it only if its lease still holds a slot.

A gold answer is stored like any label; the consensus job counts it in the annotator's record
(`router.gold.record`), so nothing in the request tells gold from routed work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlmodel import Session, col

from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Assignment, Item, Label, Project, new_id, utcnow
from router.errors import Conflict, InvalidInput
from router.observability import metrics
from router.projects.label_schema import LabelSchema
from router.queueing.assignments import AssignmentStore
from router.queueing.jobs import JobQueue
from router.tasks.service import load_assignment

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
        # Gold and routed labels issue the same statements: nothing in the request depends on
        # whether the item is gold (its answer is read by the gold-record job, not here).
        # Core statements built once: the ORM's unit of work cost more CPU than the round trips.
        row = session.execute(_PROJECT_ITEM, {"b_item": assignment.item_id}).one()
        schema = LabelSchema.parse(row.label_schema)
        _validate(body, schema)
        outcome = store.consume(row.project_id, assignment.id, row.item_id, assignment.tier)
        if not outcome.counted:
            msg = (
                "the lease on this assignment expired and the item was given to someone else, "
                "so this label was not counted; claim a new task"
            )
            raise Conflict(msg)
        now = utcnow()
        values = {
            "id": new_id(),
            "assignment_id": assignment.id,
            "project_id": row.project_id,
            "item_id": row.item_id,
            "annotator_id": assignment.annotator_id,
            "label": body.label,
            "confidence": body.confidence,
            "rationale": body.rationale,
            "duration_ms": body.duration_ms,
            "rubric_version": row.rubric_version,
            "config_version": row.routing_version,
            "created_at": now,
        }
        try:
            session.execute(_INSERT_LABEL, values)
            session.execute(_MARK_LABELED, {"b_assignment": assignment.id})
            session.execute(_COUNT_LABEL, {"b_item": row.item_id, "b_now": now})
            if before_commit is not None:
                before_commit(session, _view_of(values), True)
        except BaseException:
            if not row.is_gold:  # give the slot back: the label was not stored
                store.return_slot(
                    row.project_id, row.item_id, tier=assignment.tier, priority=row.priority or 0.0
                )
            raise
        view = _view_of(values)
        view_tier = assignment.tier
        project_id, item_id = row.project_id, row.item_id
    # Gold labels are marked too: the consensus job counts them in the annotator's record
    # (`router.gold.record`) and leaves gold items' consensus alone. If the mark is lost, the
    # reconciler counts them. So the request does the very same work for gold and routed items.
    try:
        jobs.enqueue_consensus(project_id, item_id)
    except Exception:  # the reconciler re-checks items whose labels are all in
        log.warning("could not schedule consensus for item %s", item_id)
    metrics.LABELS_SUBMITTED.labels(tier=view_tier).inc()
    return view, True


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
    return _view_of(label.model_dump())


_VIEW_FIELDS = (
    "id",
    "assignment_id",
    "item_id",
    "label",
    "confidence",
    "rationale",
    "duration_ms",
    "rubric_version",
)


def _view_of(values: dict[str, Any]) -> dict[str, Any]:
    # Nothing about correctness: gold and routed labels answer alike.
    view = {name: values[name] for name in _VIEW_FIELDS}
    view["created_at"] = as_utc(values["created_at"]).isoformat().replace("+00:00", "Z")
    return view


_PROJECT = cast("Table", Project.__table__)  # type: ignore[attr-defined]
_ITEM = cast("Table", Item.__table__)  # type: ignore[attr-defined]
_LABEL = cast("Table", Label.__table__)  # type: ignore[attr-defined]
_ASSIGNMENT = cast("Table", Assignment.__table__)  # type: ignore[attr-defined]
_PROJECT_ITEM = (
    select(
        _PROJECT.c.id.label("project_id"),
        _PROJECT.c.label_schema,
        _PROJECT.c.rubric_version,
        _PROJECT.c.routing_version,
        _ITEM.c.id.label("item_id"),
        _ITEM.c.is_gold,
        _ITEM.c.priority,
    )
    .select_from(_ITEM.join(_PROJECT, _PROJECT.c.id == _ITEM.c.project_id))
    .where(_ITEM.c.id == bindparam("b_item"))
)
_INSERT_LABEL = insert(_LABEL)
_MARK_LABELED = (
    update(_ASSIGNMENT)
    .where(_ASSIGNMENT.c.id == bindparam("b_assignment"))
    .values(status="labeled")
)
_COUNT_LABEL = (
    update(_ITEM)
    .where(_ITEM.c.id == bindparam("b_item"))
    .values(n_labels=_ITEM.c.n_labels + 1, updated_at=bindparam("b_now"))
)
