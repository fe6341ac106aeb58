"""The append-only audit log: every state change, who made it, to what, when."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from router.auth.principal import Principal
from router.db.models import AuditEvent, new_id, utcnow

__all__ = ["record"]


def record(
    session: Session,
    actor: Principal | None,
    action: str,
    *,
    object_type: str,
    object_id: str,
    project_id: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's transaction, so it is stored exactly when the change is.

    `actor` None means the service itself (a worker, the reconciler, start-up).
    """
    session.add(
        AuditEvent(
            id=new_id(),
            project_id=project_id,
            actor_key_id=actor.key_id if actor else None,
            actor_role=actor.role.value if actor else "system",
            action=action,
            object_type=object_type,
            object_id=object_id,
            detail=detail or {},
            created_at=utcnow(),
        )
    )
