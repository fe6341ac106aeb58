"""The tables: the database is the source of truth; Redis state is rebuilt from it."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

__all__ = [
    "Annotator",
    "AnnotatorConfusion",
    "ApiKey",
    "Assignment",
    "AuditEvent",
    "GoldAnswer",
    "IdempotencyRecord",
    "Item",
    "Label",
    "Project",
    "ProjectSnapshot",
    "QualityFit",
    "RoutingConfigVersion",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
    "new_id",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """An opaque identifier: 96 random bits, no sequence and no time in it."""
    return secrets.token_urlsafe(12)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    column = Column(DateTime(timezone=True), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


class Project(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    label_schema: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    rubric_version: str = Field(max_length=100)
    routing_version: int = 1
    """The routing config version in force (a row of `routing_config`)."""
    created_at: datetime = _ts()


class RoutingConfigVersion(SQLModel, table=True):
    __tablename__ = "routing_config"

    project_id: str = Field(foreign_key="project.id", primary_key=True, max_length=32)
    version: int = Field(primary_key=True)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_by: str | None = Field(default=None, max_length=32)
    """Key id of whoever made this version (None for the project's first)."""
    updated_at: datetime = _ts()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(max_length=64, unique=True, index=True)
    """SHA-256 of the key: keys are 256-bit random, so a fast hash is enough."""
    role: str = Field(max_length=16)
    project_id: str | None = Field(default=None, foreign_key="project.id", max_length=32)
    annotator_id: str | None = Field(default=None, foreign_key="annotator.id", max_length=32)
    name: str = Field(max_length=200)
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class Annotator(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("project_id", "external_id"),)

    id: str = Field(primary_key=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    external_id: str = Field(max_length=200)
    tier: str = Field(max_length=16)
    status: str = Field(default="active", max_length=16)
    status_reason: str | None = None
    n_gold: int = 0
    """Gold answers given (each gold item counts once: an annotator never sees one twice)."""
    n_gold_correct: int = 0
    onboarded_at: datetime | None = _ts(nullable=True)
    """When the annotator passed onboarding (only set where the config turns it on)."""
    gold_exhausted_at: datetime | None = _ts(nullable=True)
    """Set when a claim wanted gold for this annotator and none unseen was left."""
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Item(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_item_project_status_tier", "project_id", "status", "tier"),
        Index("ix_item_project_created", "project_id", "created_at", "id"),
        Index("ix_item_status_batch", "status", "batch_id"),
        # The backlog in listing order: `status=queued` reads a page as `limit` entries of it,
        # whatever the backlog, where (project, status, tier) made it sort every queued item.
        # Partial: ingest pays one small insert per item, and routing adds nothing to it (the
        # routed row version is not queued).
        Index(
            "ix_item_queued_created",
            "project_id",
            "created_at",
            "id",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", max_length=32)
    external_id: str = Field(max_length=200)
    batch_id: str = Field(max_length=32)
    """The ingest request that stored it; one scoring job per batch."""
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    provenance: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    committee: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    """The model committee's predictions as sent, in the producer's order: a list of
    ``{"model", "model_version", "probs"}``; None when the item came without predictions. A
    column of the item rather than rows of their own: ingest writes one row per item, and
    scoring reads an item's committee with the item."""
    is_gold: bool = False
    status: str = Field(default="queued", max_length=16)
    tier: str | None = Field(default=None, max_length=16)
    uncertainty: float | None = None
    disagreement: float | None = None
    priority: float | None = None
    labels_needed: int = 0
    """Labels wanted from the item's tier before it can settle."""
    n_labels: int = 0
    consensus_label: str | None = None
    consensus_confidence: float | None = None
    routing_reason: str | None = None
    config_version: int | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    routed_at: datetime | None = _ts(nullable=True)
    settled_at: datetime | None = _ts(nullable=True)


class GoldAnswer(SQLModel, table=True):
    __tablename__ = "gold_answer"

    item_id: str = Field(foreign_key="item.id", primary_key=True, max_length=32)
    answer: str = Field(max_length=200)
    revision: int = 1
    created_at: datetime = _ts()


class Assignment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("item_id", "annotator_id"),)

    id: str = Field(primary_key=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    item_id: str = Field(foreign_key="item.id", index=True, max_length=32)
    annotator_id: str = Field(foreign_key="annotator.id", index=True, max_length=32)
    tier: str = Field(max_length=16)
    status: str = Field(default="leased", max_length=16)
    config_version: int
    leased_at: datetime = _ts()
    lease_expires_at: datetime = _ts()
    suggestion: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The model suggestion shown with the task (model-assisted labeling), if any."""


class Label(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    assignment_id: str = Field(foreign_key="assignment.id", unique=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    item_id: str = Field(foreign_key="item.id", index=True, max_length=32)
    annotator_id: str = Field(foreign_key="annotator.id", index=True, max_length=32)
    label: str = Field(max_length=200)
    confidence: float | None = None
    rationale: str | None = None
    duration_ms: int | None = None
    rubric_version: str = Field(max_length=100)
    config_version: int
    created_at: datetime = _ts()
    gold_recorded_at: datetime | None = _ts(nullable=True)
    """When a gold label was counted in its annotator's record (by a job, never the request)."""


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_project_created", "project_id", "created_at", "id"),
        Index("ix_audit_created", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    project_id: str | None = Field(default=None, max_length=32)
    actor_key_id: str | None = Field(default=None, max_length=32)
    actor_role: str = Field(max_length=16)
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()


class ProjectSnapshot(SQLModel, table=True):
    """A project's read-out at one moment, taken by the scheduler: the history behind the
    dashboard's charts (queue depth, expert load, cost and agreement over time)."""

    __tablename__ = "project_snapshot"
    __table_args__ = (Index("ix_project_snapshot_project_taken", "project_id", "taken_at"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", max_length=32)
    taken_at: datetime = _ts(index=True)
    items_queued: int = 0
    items_routed: int = 0
    items_done: int = 0
    queue_crowd: int = 0
    """Items with free label slots in the crowd tier queue (Redis)."""
    queue_expert: int = 0
    expert_open: int = 0
    """Items the expert tier holds (routed there, not settled)."""
    expert_capacity: int = 0
    labels: int = 0
    cost: float = 0.0
    """Total cost spent so far, gold answers included (the read-out's `total_cost`)."""
    agreement_alpha: float | None = None
    """Krippendorff's alpha over the project's labels; None without enough data."""
    agreement_alpha_lo: float | None = None
    """The alpha's 95% bootstrap interval (None where the read-out has none)."""
    agreement_alpha_hi: float | None = None
    agreement_items: int = 0
    agreement_at: datetime | None = _ts(nullable=True)
    """When the agreement fields were computed: it is costly, so a snapshot carries the last
    value forward until labels change and `ROUTER_SNAPSHOT_AGREEMENT_INTERVAL` has passed."""
    agreement_labels: int = 0
    """The project's label count when the agreement fields were computed."""


class Webhook(SQLModel, table=True):
    """A URL of a project's ops that is sent the events it subscribes to, signed."""

    __table_args__ = (Index("ix_webhook_project_created", "project_id", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", max_length=32)
    url: str = Field(max_length=2000)
    events: list[str] = Field(sa_column=Column(JSON, nullable=False))
    description: str | None = Field(default=None, max_length=500)
    secret: str = Field(max_length=100)
    """The signing key, kept as is because signing needs it; the API shows it only when it is
    made (creation, rotation) and never writes it to the audit log."""
    active: bool = True
    """Inactive hooks get no new events; their pending deliveries wait until reactivated."""
    created_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    deleted_at: datetime | None = _ts(nullable=True)
    """Removed hooks are kept (soft-deleted) so that their delivery log stays readable."""


class WebhookEvent(SQLModel, table=True):
    """One event of the outbox, written in the transaction of the change that caused it."""

    __tablename__ = "webhook_event"

    id: str = Field(primary_key=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()


class WebhookDelivery(SQLModel, table=True):
    """One event to one hook: its attempts, outcome and next try (the delivery log)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        Index("ix_webhook_delivery_hook_created", "webhook_id", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    webhook_id: str = Field(foreign_key="webhook.id", max_length=32)
    event_id: str = Field(foreign_key="webhook_event.id", index=True, max_length=32)
    project_id: str = Field(max_length=32)
    event_type: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    """pending (due at next_attempt_at), delivered (a 2xx answer) or failed (gave up)."""
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=True)
    """When a pending delivery is due; while a worker holds it, the end of its lease."""
    lease_token: str | None = Field(default=None, max_length=32)
    """Set by the worker that claimed the attempt: only it may record the outcome."""
    last_attempt_at: datetime | None = _ts(nullable=True)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()


class IdempotencyRecord(SQLModel, table=True):
    """The response to a request sent with an Idempotency-Key, stored with the write it made."""

    __tablename__ = "idempotency_key"

    key_id: str = Field(primary_key=True, max_length=32)
    """The API key that sent it: keys are scoped to their sender (and so to its project)."""
    idempotency_key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    """SHA-256 of method, path, acting annotator and body: reuse for another request is refused."""
    status_code: int
    response: Any = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)


class QualityFit(SQLModel, table=True):
    """A project's last Dawid-Skene refit (one row per project, replaced by each refit)."""

    __tablename__ = "quality_fit"

    project_id: str = Field(foreign_key="project.id", primary_key=True, max_length=32)
    fitted_at: datetime = _ts()
    classes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    """The schema's labels at fit time: the order of every stored matrix's rows and columns."""
    n_labels: int = 0
    n_items: int = 0
    n_gold_items: int = 0
    n_annotators: int = 0
    n_iter: int = 0
    log_likelihood: float | None = None
    last_label_at: datetime | None = _ts(nullable=True)
    """Creation time of the newest label the fit saw: a later label makes the project due."""
    seconds: float = 0.0


class AnnotatorConfusion(SQLModel, table=True):
    """One annotator's expected confusion counts from their project's last refit."""

    __tablename__ = "annotator_confusion"

    annotator_id: str = Field(foreign_key="annotator.id", primary_key=True, max_length=32)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=32)
    counts: list[list[float]] = Field(sa_column=Column(JSON, nullable=False))
    """K x K expected counts, row = true class (in `QualityFit.classes` order)."""
    n_labels: int = 0
    fitted_at: datetime = _ts()
