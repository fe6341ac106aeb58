"""Request and response bodies of the webhook endpoints."""

from __future__ import annotations

import msgspec

__all__ = [
    "DeliveryOut",
    "DeliveryPageOut",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookOut",
    "WebhookPatch",
    "WebhookSecretOut",
]


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    """Where events are POSTed: an http or https URL."""
    events: list[str]
    """Any of item.settled, item.relabeled, item.escalated, annotator.suspended,
    annotator.flagged."""
    description: str | None = None


class WebhookPatch(msgspec.Struct, forbid_unknown_fields=True):
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    active: bool | None = None
    """False stops new events for this hook; its pending deliveries wait until it is active."""


class WebhookOut(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: str
    updated_at: str


class WebhookCreated(msgspec.Struct):
    id: str
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: str
    updated_at: str
    secret: str
    """The signing secret, shown only here: keep it to verify `X-Labelrouter-Signature`."""


class WebhookSecretOut(msgspec.Struct):
    id: str
    secret: str
    """The new signing secret, shown only here; the old one stops signing at once."""


class DeliveryOut(msgspec.Struct):
    id: str
    """Sent as `X-Labelrouter-Delivery`."""
    event_id: str
    """The event's `id` (also `X-Labelrouter-Event-Id`): the same in every retry, so
    receivers can drop repeats."""
    event_type: str
    status: str
    """pending, delivered or failed (no attempt left)."""
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    """When a pending delivery is tried next."""
    last_attempt_at: str | None
    delivered_at: str | None
    created_at: str


class DeliveryPageOut(msgspec.Struct):
    deliveries: list[DeliveryOut]
    """Newest first."""
    next_cursor: str | None
    """Pass back as `cursor` for older deliveries; null on the last page."""
