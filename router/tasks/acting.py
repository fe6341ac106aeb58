"""Which annotator a request acts for: an annotator's own key, or a tool naming one."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Table, bindparam, select

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.models import Annotator
from router.errors import ClientError, Forbidden, NotFound

__all__ = ["acting_annotator", "check_acting", "require_active"]


def check_acting(
    principal: Principal, project_id: str, x_annotator: str | None, annotator: Annotator | None
) -> Annotator:
    """The annotator the caller acts for, or why it may not: `annotator` is the project's row
    the caller names (an annotator key: its own; a tool or admin key: X-Annotator), or None
    (`acting_annotator` reads it; `tasks/next` reads it with the project)."""
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
    conn: Connection, principal: Principal, project_id: str, x_annotator: str | None
) -> Annotator:
    """The annotator the caller acts for in `project_id` (404 if the caller may not know it):
    its row read, then `check_acting`.

    A plain holder of the row's values (never added to a session).
    """
    principal.require_project(project_id)
    if principal.role is Role.ANNOTATOR:
        query, name = _BY_ID, principal.annotator_id
    elif principal.role in (Role.TOOL, Role.ADMIN) and x_annotator:
        query, name = _BY_EXTERNAL_ID, x_annotator
    else:  # may act for no one: `check_acting` says why
        return check_acting(principal, project_id, x_annotator, None)
    row = conn.execute(query, {"project_id": project_id, "annotator": name}).mappings().first()
    annotator = (
        Annotator.model_construct(**{c.name: row[c.name] for c in _ANNOTATOR.c})
        if row is not None
        else None
    )
    return check_acting(principal, project_id, x_annotator, annotator)


_ANNOTATOR = cast("Table", Annotator.__table__)  # type: ignore[attr-defined]
_BY_ID = select(_ANNOTATOR).where(
    _ANNOTATOR.c.id == bindparam("annotator"), _ANNOTATOR.c.project_id == bindparam("project_id")
)
_BY_EXTERNAL_ID = select(_ANNOTATOR).where(
    _ANNOTATOR.c.project_id == bindparam("project_id"),
    _ANNOTATOR.c.external_id == bindparam("annotator"),
)


def require_active(annotator: Annotator) -> None:
    if annotator.status != "active":
        reason = annotator.status_reason or "suspended by ops"
        msg = f"annotator {annotator.external_id!r} is suspended: {reason}. Ask ops to reactivate."
        raise Forbidden(msg)
