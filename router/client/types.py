"""Response bodies, as msgspec Structs: fields the contract names, typed; unknown fields ignored.

The service may add fields (the contract allows it); decoding ignores what these do not name, so
a newer service never breaks an older client. Large nested read-outs (metrics, quality details,
previews) keep their inner parts as plain dicts: their shape is documented in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "Annotator",
    "AnnotatorQuality",
    "AnnotatorSummary",
    "AuditEvent",
    "AuditPage",
    "GoldResult",
    "IngestResult",
    "IngestedItem",
    "Item",
    "ItemPage",
    "LabelReceipt",
    "NewAnnotator",
    "Project",
    "ProjectKey",
    "ProjectMetrics",
    "Release",
    "RoutingConfig",
    "RoutingConfigUpdate",
    "Task",
]


class Project(msgspec.Struct):
    id: str
    name: str
    label_schema: dict[str, Any]
    rubric_version: str
    routing_version: int
    created_at: str | None = None


class ProjectKey(msgspec.Struct):
    id: str
    key: str
    """Shown once: the service keeps only its hash."""
    role: str
    name: str = ""
    project_id: str = ""


class NewAnnotator(msgspec.Struct):
    id: str
    external_id: str
    tier: str
    status: str
    api_key: str
    """The annotator's own key, shown once."""


class AnnotatorSummary(msgspec.Struct):
    n_labels: int
    n_gold: int
    n_gold_correct: int
    accuracy: float
    """Posterior mean of gold accuracy under the project's Beta prior."""
    accuracy_ci: list[float]
    gold_exhausted: bool = False
    onboarded_at: str | None = None


class Annotator(msgspec.Struct):
    id: str
    external_id: str
    tier: str
    status: str
    status_reason: str | None = None
    created_at: str | None = None
    quality: AnnotatorSummary | None = None


class AnnotatorQuality(msgspec.Struct):
    n_gold: int
    accuracy: float
    accuracy_ci: list[float]
    confusion: list[list[float]]
    ece: float | None
    brier: float | None
    n_labels: int
    status: str
    flags: list[str]
    """e.g. `overconfident`, `drift`, `anchoring`, `accuracy_below_bar`, `gold_exhausted`."""
    annotator_id: str = ""
    external_id: str = ""
    tier: str = ""
    status_reason: str | None = None
    n_gold_correct: int = 0
    confusion_classes: list[str] = msgspec.field(default_factory=list)
    reliability: list[dict[str, Any]] | None = None
    drift: dict[str, Any] | None = None
    anchoring: dict[str, Any] | None = None
    """Model-assisted labeling: how often wrong suggestions on gold were given."""


class IngestedItem(msgspec.Struct):
    external_id: str
    id: str


class IngestResult(msgspec.Struct):
    accepted: int
    duplicates: int
    items: list[IngestedItem]
    batch_id: str | None = None


class Item(msgspec.Struct):
    id: str
    external_id: str
    status: str
    """queued, routed or done."""
    tier: str | None
    """auto, crowd or expert; None while queued."""
    scores: dict[str, float | None]
    n_labels: int
    consensus: dict[str, Any] | None
    """{"label", "confidence"} or None."""
    routing_reason: str | None
    config_version: int | None
    labels_needed: int | None = None
    is_gold: bool | None = None
    settled_at: str | None = None


class ItemPage(msgspec.Struct):
    items: list[Item]
    next_cursor: str | None


class GoldResult(msgspec.Struct):
    accepted: int
    items: list[IngestedItem]
    updated: int = 0


class Task(msgspec.Struct):
    assignment_id: str
    item_id: str
    payload: dict[str, Any]
    label_schema: dict[str, Any]
    rubric_version: str
    lease_expires_at: str
    suggestion: dict[str, Any] | None = None


class LabelReceipt(msgspec.Struct):
    id: str
    assignment_id: str
    item_id: str
    label: str
    confidence: float | None = None
    rationale: str | None = None
    duration_ms: int | None = None
    rubric_version: str | None = None
    created_at: str | None = None
    replayed: bool = False
    """True when the service had this very submission already (200, not 201)."""


class Release(msgspec.Struct):
    assignment_id: str
    status: str


class RoutingConfig(msgspec.Struct):
    version: int
    config: dict[str, Any]
    updated_by: str | None
    updated_at: str
    reroute: dict[str, Any] | None = None


class RoutingConfigUpdate(msgspec.Struct):
    version: int
    changed: bool
    reroute_scheduled: bool
    changes: list[dict[str, Any]]


class ProjectMetrics(msgspec.Struct):
    items: dict[str, Any]
    """total, by_status, by_tier, gold."""
    queues: dict[str, Any]
    labels: dict[str, Any]
    """total, by_tier, cost, total_cost (gold included), costs_per_label."""
    agreement: dict[str, Any]
    gold_coverage: dict[str, Any]
    config_version: int


class AuditEvent(msgspec.Struct):
    id: str
    project_id: str | None
    action: str
    object_type: str
    object_id: str
    actor_key_id: str | None
    actor_role: str
    detail: dict[str, Any]
    created_at: str
    actor_key_name: str | None = None


class AuditPage(msgspec.Struct):
    events: list[AuditEvent]
    next_cursor: str | None
