"""Response bodies of the item endpoints (the ingest body is parsed by `router.items.ingest`)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["IngestOut", "IngestedItem", "ItemPageOut"]


class IngestedItem(msgspec.Struct):
    external_id: str
    id: str


class IngestOut(msgspec.Struct):
    accepted: int
    """Items stored by this request."""
    duplicates: int
    """Items whose external_id was already stored (or repeated within the request)."""
    items: list[IngestedItem]
    """Every item of the request, in order, with the id it is stored under."""
    batch_id: str


class ItemPageOut(msgspec.Struct):
    items: list[dict[str, Any]]
    next_cursor: str | None
