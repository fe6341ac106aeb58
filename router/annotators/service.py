"""Registering annotators, listing them with a quality summary, changing tier or status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from router import audit
from router.auth.keys import Role, generate_key, hash_key
from router.auth.principal import Principal
from router.consensus.service import reopen_after_suspension
from router.db.database import Database, as_utc
from router.db.models import Annotator, ApiKey, Label, new_id, utcnow
from router.errors import Conflict, InvalidInput, NotFound
from router.projects.label_schema import LabelSchema
from router.projects.service import get_project, routing_config
from router.quality.report import project_quality
from router.quality.rules import GoldRecord, accuracy_estimate
from router.queueing.assignments import AssignmentStore
from router.routing.config import RoutingConfig
from router.webhooks.events import suspended_event
from router.webhooks.outbox import emit

__all__ = ["annotator_view", "create_annotator", "list_annotators", "update_annotator"]

TIERS = ("crowd", "expert")
STATUSES = ("active", "suspended")


def create_annotator(
    db: Database, actor: Principal, project_id: str, *, external_id: str, tier: str
) -> tuple[Annotator, str]:
    """Register an annotator and make its key; the raw key is returned once."""
    actor.authorize(project_id, Role.OPS)
    problems = []
    if not external_id.strip() or len(external_id) > 200:
        problems.append({"field": "external_id", "message": "a non-empty string of at most 200"})
    if tier not in TIERS:
        problems.append({"field": "tier", "message": f"must be one of {', '.join(TIERS)}"})
    if problems:
        raise InvalidInput("the annotator cannot be created as sent", extra=problems)
    raw = generate_key()
    now = utcnow()
    annotator = Annotator(
        id=new_id(),
        project_id=project_id,
        external_id=external_id,
        tier=tier,
        status="active",
        created_at=now,
        updated_at=now,
    )
    try:
        with db.session() as session:
            get_project(session, actor, project_id)
            taken = session.execute(
                select(col(Annotator.id)).where(
                    col(Annotator.project_id) == project_id,
                    col(Annotator.external_id) == external_id,
                )
            ).first()
            if taken is not None:
                raise _duplicate(external_id)
            session.add(annotator)
            session.flush()
            key = ApiKey(
                id=new_id(),
                key_hash=hash_key(raw),
                role=Role.ANNOTATOR.value,
                project_id=project_id,
                annotator_id=annotator.id,
                name=f"annotator {external_id}",
                created_at=now,
            )
            session.add(key)
            audit.record(
                session,
                actor,
                "annotator.created",
                object_type="annotator",
                object_id=annotator.id,
                project_id=project_id,
                detail={"external_id": external_id, "tier": tier, "key_id": key.id},
            )
    except IntegrityError:  # a concurrent request registered the same external_id first
        raise _duplicate(external_id) from None
    return annotator, raw


def _duplicate(external_id: str) -> Conflict:
    return Conflict(
        f"an annotator with external_id {external_id!r} already exists in this project; "
        "use PATCH to change its tier or status"
    )


def list_annotators(db: Database, actor: Principal, project_id: str) -> list[dict[str, Any]]:
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        project = get_project(session, actor, project_id)
        config = routing_config(session, project)
        annotators = list(
            session.execute(
                select(Annotator)
                .where(col(Annotator.project_id) == project_id)
                .order_by(col(Annotator.created_at), col(Annotator.id))
            ).scalars()
        )
        counts = dict(
            session.execute(
                select(col(Label.annotator_id), func.count())
                .where(col(Label.project_id) == project_id)
                .group_by(col(Label.annotator_id))
            ).all()
        )
        reports = project_quality(
            session, project_id, annotators, counts, LabelSchema.parse(project.label_schema), config
        )
    views = []
    for a in annotators:
        view = annotator_view(a, n_labels=counts.get(a.id, 0), config=config)
        # The summary plus everything of the annotator's quality read-out (confusion,
        # calibration and its reliability table, drift, anchoring, flags).
        view["quality"] |= {k: v for k, v in reports[a.id].items() if k not in _IDENTITY}
        views.append(view)
    return views


_IDENTITY = frozenset({"annotator_id", "external_id", "tier", "status", "status_reason"})


def update_annotator(
    db: Database,
    store: AssignmentStore,
    actor: Principal,
    project_id: str,
    annotator_id: str,
    *,
    tier: str | None,
    status: str | None,
    reason: str | None,
) -> dict[str, Any]:
    actor.authorize(project_id, Role.OPS)
    problems = []
    if tier is not None and tier not in TIERS:
        problems.append({"field": "tier", "message": f"must be one of {', '.join(TIERS)}"})
    if status is not None and status not in STATUSES:
        problems.append({"field": "status", "message": f"must be one of {', '.join(STATUSES)}"})
    if tier is None and status is None:
        problems.append({"field": "", "message": "send at least one of tier, status"})
    if problems:
        raise InvalidInput("the annotator cannot be changed as sent", extra=problems)
    with db.session() as session:
        project = get_project(session, actor, project_id)
        annotator = session.get(Annotator, annotator_id)
        if annotator is None or annotator.project_id != project_id:
            raise NotFound(f"annotator {annotator_id!r} not found in project {project_id!r}")
        changes: dict[str, Any] = {}
        if tier is not None and tier != annotator.tier:
            changes["tier"] = [annotator.tier, tier]
            annotator.tier = tier
        if status is not None and status != annotator.status:
            changes["status"] = [annotator.status, status]
            annotator.status = status
            annotator.status_reason = (
                (reason or "suspended by ops") if status == "suspended" else None
            )
        if changes:
            annotator.updated_at = utcnow()
            session.add(annotator)
            action = {"suspended": "annotator.suspended", "active": "annotator.reactivated"}
            audit.record(
                session,
                actor,
                action.get(status or "", "annotator.updated")
                if "status" in changes
                else "annotator.updated",
                object_type="annotator",
                object_id=annotator.id,
                project_id=project_id,
                detail={"changes": changes, "reason": reason},
            )
            if changes.get("status", [None, None])[1] == "suspended":
                emit(
                    session,
                    project_id,
                    "annotator.suspended",
                    suspended_event(annotator, automatic=False),
                )
        n_labels = session.execute(
            select(func.count()).where(col(Label.annotator_id) == annotator.id)
        ).scalar_one()
        view = annotator_view(
            annotator, n_labels=int(n_labels), config=routing_config(session, project)
        )
    if changes.get("status", [None, None])[1] == "suspended":
        # Their labels stop counting: open items they labeled want one label more.
        reopen_after_suspension(db, store, annotator_id)
    return view


def annotator_view(annotator: Annotator, *, n_labels: int, config: RoutingConfig) -> dict[str, Any]:
    record = GoldRecord(n_gold=annotator.n_gold, n_correct=annotator.n_gold_correct)
    mean, lo, hi = accuracy_estimate(record, config)
    return {
        "id": annotator.id,
        "external_id": annotator.external_id,
        "tier": annotator.tier,
        "status": annotator.status,
        "status_reason": annotator.status_reason,
        "created_at": _iso(annotator.created_at),
        "quality": {
            "n_labels": n_labels,
            "n_gold": annotator.n_gold,
            "n_gold_correct": annotator.n_gold_correct,
            # Posterior mean and 95% credible interval under the config's Beta prior: with no
            # gold yet, this is the prior, and the interval says how little that means.
            "accuracy": mean,
            "accuracy_ci": [lo, hi],
            "onboarded_at": _iso(annotator.onboarded_at),
            "gold_exhausted": annotator.gold_exhausted_at is not None,
        },
    }


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value is not None else None
