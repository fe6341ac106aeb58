"""Which annotator a request acts for: an annotator's own key, or a tool naming one."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.models import Annotator
from router.errors import ClientError, Forbidden, NotFound

__all__ = ["acting_annotator", "check_acting", "require_active"]


def check_acting(
    principal: Principal, project_id: str, x_annotator: str | None, annotator: Annotator | None
) -> Annotator:
    """`acting_annotator` for a row already read: `annotator` is the project's row the caller
    names (an annotator key: its own; a tool or admin key: X-Annotator), or None. Same
    refusals, in the same order."""
    if principal.role is Role.ANNOTATOR:
        if annotator is None:
            raise NotFound(f"project {project_id!r} not found")
        if x_annotator is not None and x_annotator != annotator.external_id:
            raise Forbidden("an annotator key acts only for its own annotator; drop X-Annotator")
        return annotator
    if principal.role not in (Role.TOOL, Role.ADMIN):
        msg = (
            f"a {principal.role.value} key may not work on tasks; use the annotator's own key "
            "or a tool key with the header X-Annotator"
        )
        raise Forbidden(msg)
    if not x_annotator:
        raise ClientError(
            "a tool key must name the annotator it acts for: X-Annotator: <external_id>"
        )
    if annotator is None:
        raise NotFound(f"annotator {x_annotator!r} not found in project {project_id!r}")
    return annotator


def acting_annotator(
    session: Session,
    principal: Principal,
    project_id: str,
    x_annotator: str | None,
    *,
    lock: bool = False,
) -> Annotator:
    """The annotator the caller acts for in `project_id` (404 if the caller may not know it).

    `lock` holds the annotator's row (FOR NO KEY UPDATE) until the transaction ends.
    """
    principal.require_project(project_id)
    if principal.role is Role.ANNOTATOR:
        annotator = session.get(
            Annotator, principal.annotator_id, with_for_update={"key_share": True} if lock else None
        )
        if annotator is None or annotator.project_id != project_id:
            raise NotFound(f"project {project_id!r} not found")
        if x_annotator is not None and x_annotator != annotator.external_id:
            raise Forbidden("an annotator key acts only for its own annotator; drop X-Annotator")
        return annotator
    if principal.role not in (Role.TOOL, Role.ADMIN):
        msg = (
            f"a {principal.role.value} key may not work on tasks; use the annotator's own key "
            "or a tool key with the header X-Annotator"
        )
        raise Forbidden(msg)
    if not x_annotator:
        raise ClientError(
            "a tool key must name the annotator it acts for: X-Annotator: <external_id>"
        )
    query = select(Annotator).where(
        col(Annotator.project_id) == project_id, col(Annotator.external_id) == x_annotator
    )
    if lock:
        query = query.with_for_update(key_share=True)
    annotator = session.execute(query).scalar_one_or_none()
    if not isinstance(annotator, Annotator):
        raise NotFound(f"annotator {x_annotator!r} not found in project {project_id!r}")
    return annotator


def require_active(annotator: Annotator) -> None:
    if annotator.status != "active":
        reason = annotator.status_reason or "suspended by ops"
        msg = f"annotator {annotator.external_id!r} is suspended: {reason}. Ask ops to reactivate."
        raise Forbidden(msg)
