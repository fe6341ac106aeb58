"""Request and response bodies of the annotator endpoints."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["AnnotatorCreate", "AnnotatorCreated", "AnnotatorPatch"]


class AnnotatorCreate(msgspec.Struct, forbid_unknown_fields=True):
    external_id: str
    tier: Literal["crowd", "expert"]


class AnnotatorCreated(msgspec.Struct):
    id: str
    external_id: str
    tier: str
    status: str
    api_key: str
    """The annotator's own key, shown once."""


class AnnotatorPatch(msgspec.Struct, forbid_unknown_fields=True):
    tier: Literal["crowd", "expert"] | None = None
    status: Literal["active", "suspended"] | None = None
    reason: str | None = None
    """Why, recorded in the audit log and shown to a suspended annotator."""
