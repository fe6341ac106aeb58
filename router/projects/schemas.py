"""Request and response bodies of the project and key endpoints."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["KeyCreate", "KeyOut", "ProjectCreate", "ProjectOut"]


class ProjectCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    label_schema: dict[str, Any]
    """{"kind": "categorical", "classes": [...]} or {"kind": "ordinal", "levels": [...]}"""
    rubric_version: str
    routing: dict[str, Any] | None = None
    """Overrides of config/routing.yaml; unknown fields are rejected."""


class ProjectOut(msgspec.Struct):
    id: str
    name: str
    label_schema: dict[str, Any]
    rubric_version: str
    routing_version: int
    created_at: str


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["ops", "producer", "tool"]
    name: str


class KeyOut(msgspec.Struct):
    id: str
    key: str
    """Shown once: only its hash is stored."""
    role: str
    name: str
    project_id: str
