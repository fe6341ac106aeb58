"""Submitting a label: count it only if its lease still holds a slot.

A gold answer is stored like any label; the consensus job counts it in the annotator's record
(`router.gold.record`), so nothing in the request tells gold from routed work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from router.auth.principal import Principal
from router.db.database import Database, as_utc
from router.db.models import Assignment, Item, Label, new_id, utcnow
from router.errors import Conflict, InvalidInput
from router.observability import metrics
from router.projects.label_schema import LabelSchema
from router.queueing.assignments import AssignmentStore
from router.queueing.jobs import JobQueue
from router.ratelimit.limiter import RateTicket
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
    before_commit: Callable[[Connection, dict[str, Any], bool], None] | None = None,
    rate: RateTicket | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a label; returns (label view, created). The same body again returns the first.

    `rate` counts the request against its key's limit in the lease's own Redis call (429 over
    it, with nothing written).

    `before_commit(conn, view, created)` runs inside the label's transaction (the
    Idempotency-Key response is stored there, so that it commits exactly with the label).

    Every statement is Core, in a transaction of a plain connection (`Database.transaction`):
    an ORM session's identity map, flush and events cost CPU and did nothing here. No project
    or annotator row is written (the gold-record job suspends annotators, in its own session),
    so the claimant cache has nothing to be told.
    """
    with db.transaction() as conn:
        held = load_assignment(conn, principal, assignment_id, x_annotator)
        assignment = held.assignment
        # The label and the status "labeled" are written in one transaction, so only a
        # labeled assignment can have one: the lookup is skipped on the hot path.
        existing = (
            conn.execute(_EXISTING_LABEL, {"b_assignment": assignment.id}).mappings().one_or_none()
            if assignment.status == "labeled"
            else None
        )
        if existing is not None:
            if _same(existing, body):
                if before_commit is not None:
                    before_commit(conn, _view_of(existing), False)
                return _view_of(existing), False
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
        project_id, item_id = assignment.project_id, assignment.item_id
        _validate(body, LabelSchema.parse(held.label_schema))
        outcome = store.consume(project_id, assignment.id, item_id, assignment.tier, rate)
        if outcome.retry_after_ms is not None and rate is not None:
            raise rate.refusal(outcome.retry_after_ms)
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
            "project_id": project_id,
            "item_id": item_id,
            "annotator_id": assignment.annotator_id,
            "label": body.label,
            "confidence": body.confidence,
            "rationale": body.rationale,
            "duration_ms": body.duration_ms,
            "rubric_version": held.rubric_version,
            "config_version": held.routing_version,
            "created_at": now,
        }
        try:
            marks = {"b_assignment": assignment.id, "b_item": item_id, "b_now": now}
            if db.is_sqlite:
                conn.execute(_INSERT_LABEL, values)
                conn.execute(_MARK_LABELED, marks)
                conn.execute(_COUNT_LABEL, marks)
            else:  # one round trip
                conn.execute(_PG_WRITE_LABEL, {**{"l_" + k: v for k, v in values.items()}, **marks})
            if before_commit is not None:
                before_commit(conn, _view_of(values), True)
        except BaseException:
            if not held.is_gold:  # give the slot back: the label was not stored
                store.return_slot(
                    project_id, item_id, tier=assignment.tier, priority=held.priority or 0.0
                )
            raise
        view = _view_of(values)
        view_tier = assignment.tier
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


def _same(label: Mapping[Any, Any], body: LabelInput) -> bool:
    """Whether the stored label (its row) is the one `body` sends."""
    return (label["label"], label["confidence"], label["rationale"], label["duration_ms"]) == (
        body.label,
        body.confidence,
        body.rationale,
        body.duration_ms,
    )


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


def _view_of(values: Mapping[Any, Any]) -> dict[str, Any]:
    # Nothing about correctness: gold and routed labels answer alike.
    view = {name: values[name] for name in _VIEW_FIELDS}
    view["created_at"] = as_utc(values["created_at"]).isoformat().replace("+00:00", "Z")
    return view


_ITEM = cast("Table", Item.__table__)  # type: ignore[attr-defined]
_LABEL = cast("Table", Label.__table__)  # type: ignore[attr-defined]
_ASSIGNMENT = cast("Table", Assignment.__table__)  # type: ignore[attr-defined]
_INSERT_LABEL = insert(_LABEL)
_EXISTING_LABEL = select(_LABEL).where(_LABEL.c.assignment_id == bindparam("b_assignment"))
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
_LABEL_VALUES = (
    "id",
    "assignment_id",
    "project_id",
    "item_id",
    "annotator_id",
    "label",
    "confidence",
    "rationale",
    "duration_ms",
    "rubric_version",
    "config_version",
    "created_at",
)
"""The columns a label is stored with (its gold record is the consensus job's, later)."""
# PostgreSQL: the three writes of a label in one statement (data-modifying CTEs), the label's
# values bound as l_<column>.
_PG_WRITE_LABEL = _COUNT_LABEL.add_cte(
    insert(_LABEL)
    .values({name: bindparam("l_" + name, type_=_LABEL.c[name].type) for name in _LABEL_VALUES})
    .cte("new_label"),
    _MARK_LABELED.cte("labeled_assignment"),
)
