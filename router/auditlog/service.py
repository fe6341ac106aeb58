"""The audit log read-out: newest first, keyset-paginated on (created_at, id).

Reads only. The log is written by `router.audit.record` inside the transaction of each change,
and no code path (and no HTTP route) updates or deletes an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlmodel import Session, col

from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.cursor import decode_cursor, encode_cursor
from router.db.database import Database, as_utc
from router.db.models import ApiKey, AuditEvent
from router.errors import InvalidInput
from router.projects.service import get_project

__all__ = ["MAX_LIMIT", "AuditPage", "list_all_events", "list_project_events"]

MAX_LIMIT = 1000
_MAX_ACTION_CHARS = 64


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[dict[str, Any]]
    next_cursor: str | None
    """Pass back as `cursor` for the next (older) page; None on the last page."""


def list_project_events(
    db: Database,
    actor: Principal,
    project_id: str,
    *,
    action: str | None,
    cursor: str | None,
    limit: int,
) -> AuditPage:
    """The project's events (ops of the project, admin)."""
    actor.authorize(project_id, Role.OPS)
    after = _check(action, cursor, limit)
    with db.read() as session:
        get_project(session, actor, project_id)
        query = _events().where(col(AuditEvent.project_id) == project_id)
        return _page(session, query, action=action, after=after, limit=limit)


def list_all_events(
    db: Database, actor: Principal, *, action: str | None, cursor: str | None, limit: int
) -> AuditPage:
    """Every event, of every project and of none (admin key creation, start-up)."""
    actor.require_admin()
    after = _check(action, cursor, limit)
    with db.read() as session:
        return _page(session, _events(), action=action, after=after, limit=limit)


def _check(action: str | None, cursor: str | None, limit: int) -> tuple[datetime, str] | None:
    problems: list[dict[str, str]] = []
    if not 1 <= limit <= MAX_LIMIT:
        problems.append({"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"})
    if action is not None and not 0 < len(action) <= _MAX_ACTION_CHARS:
        problems.append(
            {
                "field": "action",
                "message": f"an event action such as 'key.created' (1 to {_MAX_ACTION_CHARS} "
                "characters)",
            }
        )
    after = decode_cursor(cursor, problems) if cursor else None
    if problems:
        raise InvalidInput("invalid audit listing parameters", extra=problems)
    return after


def _events() -> Select[AuditEvent, str]:
    # The key's name says who acted far better than its id; keys are never deleted, but the
    # join is outer so that an event whose key is unknown still shows.
    return select(AuditEvent, col(ApiKey.name)).outerjoin(
        ApiKey, col(ApiKey.id) == col(AuditEvent.actor_key_id)
    )


def _page(
    session: Session,
    query: Select[AuditEvent, str],
    *,
    action: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> AuditPage:
    created, event_id = col(AuditEvent.created_at), col(AuditEvent.id)
    if action is not None:
        query = query.where(col(AuditEvent.action) == action)
    if after is not None:
        ts, last_id = after
        # The plain bound (created_at <= ts) lets both databases start the index scan at the
        # cursor instead of filtering every newer event again on each page.
        query = query.where(
            created <= ts, or_(created < ts, and_(created == ts, event_id < last_id))
        )
    query = query.order_by(created.desc(), event_id.desc()).limit(limit + 1)
    rows = session.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    events = [_view(event, key_name) for event, key_name in rows]
    last = rows[-1][0] if rows else None
    return AuditPage(
        events=events,
        next_cursor=encode_cursor(last.created_at, last.id) if more and last else None,
    )


def _view(event: AuditEvent, key_name: str | None) -> dict[str, Any]:
    return {
        "id": event.id,
        "project_id": event.project_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "actor_key_id": event.actor_key_id,
        "actor_key_name": key_name,
        "actor_role": event.actor_role,
        "detail": event.detail,
        "created_at": as_utc(event.created_at).isoformat().replace("+00:00", "Z"),
    }
