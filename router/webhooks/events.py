"""The `data` of each event type: what a receiver gets (the project id is added to each)."""

from __future__ import annotations

from typing import Any

from router.db.models import Annotator, Item, utcnow
from router.quality.rules import GoldRecord, accuracy_estimate
from router.routing.config import RoutingConfig
from router.webhooks.outbox import iso

__all__ = [
    "auto_settled_event",
    "escalated_event",
    "flagged_event",
    "relabeled_event",
    "settled_event",
    "suspended_event",
]


def settled_event(item: Item, reason: str) -> dict[str, Any]:
    """item.settled: the final label, by consensus or by auto-acceptance."""
    return {
        "item_id": item.id,
        "external_id": item.external_id,
        "label": item.consensus_label,
        "confidence": item.consensus_confidence,
        "tier": item.tier,
        "n_labels": item.n_labels,
        "reason": reason,
        "config_version": item.config_version,
        "settled_at": iso(item.settled_at),
    }


def relabeled_event(item: Item, previous: str | None, reason: str) -> dict[str, Any]:
    """item.relabeled: a settled item's label was revised (after a refit of the annotators'
    confusion matrices); `item` already holds the new label."""
    return {
        "item_id": item.id,
        "external_id": item.external_id,
        "label": item.consensus_label,
        "previous_label": previous,
        "confidence": item.consensus_confidence,
        "tier": item.tier,
        "n_labels": item.n_labels,
        "reason": reason,
        "config_version": item.config_version,
        "relabeled_at": iso(item.updated_at),
    }


def auto_settled_event(item_id: str, external_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """item.settled for an item auto-accepted by routing; `row` holds the columns routing
    writes (`router.routing.service.routing_row`)."""
    return {
        "item_id": item_id,
        "external_id": external_id,
        "label": row["consensus_label"],
        "confidence": row["consensus_confidence"],
        "tier": row["tier"],
        "n_labels": 0,
        "reason": row["routing_reason"],
        "config_version": row["config_version"],
        "settled_at": iso(row["settled_at"]),
    }


def escalated_event(item: Item, from_tier: str | None, reason: str) -> dict[str, Any]:
    """item.escalated: the item now waits for the expert tier."""
    return {
        "item_id": item.id,
        "external_id": item.external_id,
        "tier": item.tier,
        "from_tier": from_tier,
        "reason": reason,
        "labels_needed": item.labels_needed,
        "n_labels": item.n_labels,
        "config_version": item.config_version,
        "escalated_at": iso(utcnow()),
    }


def suspended_event(annotator: Annotator, *, automatic: bool) -> dict[str, Any]:
    """annotator.suspended: by the quality or onboarding rule (automatic) or by ops."""
    return {
        "annotator_id": annotator.id,
        "external_id": annotator.external_id,
        "tier": annotator.tier,
        "reason": annotator.status_reason,
        "automatic": automatic,
        "n_gold": annotator.n_gold,
        "n_gold_correct": annotator.n_gold_correct,
        "suspended_at": iso(utcnow()),
    }


def flagged_event(
    annotator: Annotator,
    flag: str,
    flags: list[str],
    record: GoldRecord,
    config: RoutingConfig,
) -> dict[str, Any]:
    """annotator.flagged: `flag` was just raised; `flags` are all the annotator has now."""
    mean, lo, hi = accuracy_estimate(record, config)
    return {
        "annotator_id": annotator.id,
        "external_id": annotator.external_id,
        "tier": annotator.tier,
        "status": annotator.status,
        "flag": flag,
        "flags": flags,
        "n_gold": record.n_gold,
        "n_gold_correct": record.n_correct,
        "accuracy": mean,
        "accuracy_ci": [lo, hi],
        "flagged_at": iso(utcnow()),
    }
