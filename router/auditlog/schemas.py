"""Response bodies of the audit read-out."""

from __future__ import annotations

import msgspec

__all__ = ["AuditEventOut", "AuditPageOut"]


class AuditEventOut(msgspec.Struct):
    id: str
    project_id: str | None
    """None for events that belong to no project (admin keys, start-up)."""
    action: str
    """What happened, e.g. `project.created`, `items.ingested`, `export.started`."""
    object_type: str
    object_id: str
    actor_key_id: str | None
    """The key that acted; None when the service itself did (a worker, start-up)."""
    actor_key_name: str | None
    actor_role: str
    """The acting key's role, or `system`."""
    detail: dict[str, object]
    created_at: str


class AuditPageOut(msgspec.Struct):
    events: list[AuditEventOut]
    """Newest first."""
    next_cursor: str | None
    """Pass back as `cursor` for older events; null on the last page."""
