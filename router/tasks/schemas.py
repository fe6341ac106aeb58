"""Request and response bodies of the work loop and gold endpoints."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["GoldIn", "GoldRequest", "LabelIn", "TaskOut"]


class TaskOut(msgspec.Struct, omit_defaults=True):
    assignment_id: str
    item_id: str
    payload: dict[str, Any]
    label_schema: dict[str, Any]
    rubric_version: str
    lease_expires_at: str
    suggestion: dict[str, Any] | None = None
    """Only where the project's routing config turns model-assisted labeling on."""


class LabelIn(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    confidence: float | None = None
    """The annotator's own confidence in the label, in [0, 1]."""
    rationale: str | None = None
    duration_ms: int | None = None


class GoldIn(msgspec.Struct, forbid_unknown_fields=True):
    external_id: str
    payload: dict[str, Any]
    answer: str
    revision: int | None = None
    """A higher revision of an existing gold item replaces its answer."""
    predictions: list[Any] | None = None
    """Model predictions, as on ingest: with model-assisted labeling on, the suggestion shown
    on this gold item comes from them (a wrong one measures anchoring)."""


class GoldRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: list[GoldIn]
