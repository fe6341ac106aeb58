"""Registering, changing and removing a project's webhooks; reading their delivery log."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select, update
from sqlmodel import Session, col

from router import audit
from router.auth.keys import Role
from router.auth.principal import Principal
from router.db.cursor import decode_cursor, encode_cursor
from router.db.database import Database
from router.db.models import Webhook, WebhookDelivery, new_id, utcnow
from router.errors import InvalidInput, NotFound
from router.projects.service import get_project
from router.webhooks.outbox import EVENT_TYPES, forget_subscriptions, iso

__all__ = [
    "MAX_LIMIT",
    "create_webhook",
    "delete_webhook",
    "list_deliveries",
    "list_webhooks",
    "rotate_secret",
    "update_webhook",
]

MAX_LIMIT = 1000
_MAX_URL = 2000
_MAX_DESCRIPTION = 500
_STATUSES = ("pending", "delivered", "failed")


def _new_secret() -> str:
    # 256 random bits; the prefix makes a leaked secret easy to recognise.
    return "whsec_" + secrets.token_urlsafe(32)


def _check(
    url: str | None, events: list[str] | None, description: str | None
) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    if url is not None:
        problems.extend(_url_problems(url))
    if events is not None:
        unknown = [e for e in events if e not in EVENT_TYPES]
        if not events:
            problems.append(
                {"field": "events", "message": f"name at least one of {', '.join(EVENT_TYPES)}"}
            )
        elif unknown:
            problems.append(
                {
                    "field": "events",
                    "message": f"unknown event(s) {', '.join(map(repr, unknown))}; "
                    f"known: {', '.join(EVENT_TYPES)}",
                }
            )
        elif len(set(events)) != len(events):
            problems.append({"field": "events", "message": "names an event twice"})
    if description is not None and len(description) > _MAX_DESCRIPTION:
        problems.append(
            {"field": "description", "message": f"at most {_MAX_DESCRIPTION} characters"}
        )
    return problems


def _url_problems(url: str) -> list[dict[str, str]]:
    def problem(message: str) -> list[dict[str, str]]:
        return [{"field": "url", "message": message}]

    if len(url) > _MAX_URL:
        return problem(f"at most {_MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number or out of range
    except ValueError as exc:
        return problem(f"not a valid URL: {exc}")
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return problem(
            "an absolute http:// or https:// URL with a host, e.g. https://example.com/hook"
        )
    if parts.username is not None or parts.password is not None:
        return problem(
            "credentials in the URL would show in listings and the audit log; receivers "
            "authenticate requests by their signature instead"
        )
    if parts.fragment:
        return problem("a URL without a #fragment (it is never sent)")
    return []


def _view(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "description": hook.description,
        "active": hook.active,
        "created_at": iso(hook.created_at),
        "updated_at": iso(hook.updated_at),
    }


def _load(session: Session, actor: Principal, project_id: str, hook_id: str) -> Webhook:
    get_project(session, actor, project_id)
    hook = session.get(Webhook, hook_id)
    if hook is None or hook.project_id != project_id or hook.deleted_at is not None:
        raise NotFound(f"webhook {hook_id!r} not found in project {project_id!r}")
    return hook


def create_webhook(
    db: Database,
    actor: Principal,
    project_id: str,
    *,
    url: str,
    events: list[str],
    description: str | None,
) -> dict[str, Any]:
    """Register a hook; the view includes its signing `secret`, which is shown only here."""
    actor.authorize(project_id, Role.OPS)
    problems = _check(url, events, description)
    if problems:
        raise InvalidInput("the webhook cannot be registered as sent", extra=problems)
    now = utcnow()
    hook = Webhook(
        id=new_id(),
        project_id=project_id,
        url=url,
        # Stored in the canonical order, so listings do not depend on how they were sent.
        events=[e for e in EVENT_TYPES if e in events],
        description=description,
        secret=_new_secret(),
        active=True,
        created_by=actor.key_id,
        created_at=now,
        updated_at=now,
    )
    with db.session() as session:
        get_project(session, actor, project_id)
        session.add(hook)
        audit.record(
            session,
            actor,
            "webhook.created",
            object_type="webhook",
            object_id=hook.id,
            project_id=project_id,
            detail={"url": url, "events": hook.events, "description": description},
        )
    forget_subscriptions(project_id)
    return {**_view(hook), "secret": hook.secret}


def list_webhooks(db: Database, actor: Principal, project_id: str) -> list[dict[str, Any]]:
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        get_project(session, actor, project_id)
        hooks = session.execute(
            select(Webhook)
            .where(col(Webhook.project_id) == project_id, col(Webhook.deleted_at).is_(None))
            .order_by(col(Webhook.created_at), col(Webhook.id))
        ).scalars()
        return [_view(h) for h in hooks]


def get_webhook(db: Database, actor: Principal, project_id: str, hook_id: str) -> dict[str, Any]:
    actor.authorize(project_id, Role.OPS)
    with db.read() as session:
        return _view(_load(session, actor, project_id, hook_id))


def update_webhook(
    db: Database,
    actor: Principal,
    project_id: str,
    hook_id: str,
    *,
    url: str | None,
    events: list[str] | None,
    description: str | None,
    active: bool | None,
) -> dict[str, Any]:
    actor.authorize(project_id, Role.OPS)
    problems = _check(url, events, description)
    if url is None and events is None and description is None and active is None:
        problems.append(
            {"field": "", "message": "send at least one of url, events, description, active"}
        )
    if problems:
        raise InvalidInput("the webhook cannot be changed as sent", extra=problems)
    with db.session() as session:
        hook = _load(session, actor, project_id, hook_id)
        changes: dict[str, list[Any]] = {}
        wanted: dict[str, Any] = {
            "url": url,
            "events": [e for e in EVENT_TYPES if e in events] if events is not None else None,
            "description": description,
            "active": active,
        }
        for name, value in wanted.items():
            if value is not None and value != getattr(hook, name):
                changes[name] = [getattr(hook, name), value]
                setattr(hook, name, value)
        if changes:
            hook.updated_at = utcnow()
            session.add(hook)
            audit.record(
                session,
                actor,
                "webhook.updated",
                object_type="webhook",
                object_id=hook.id,
                project_id=project_id,
                detail={"changes": changes},
            )
        view = _view(hook)
    forget_subscriptions(project_id)
    return view


def delete_webhook(db: Database, actor: Principal, project_id: str, hook_id: str) -> None:
    """Remove a hook: it gets no more events, and its pending deliveries are marked failed.

    The row stays (soft delete) so that the deliveries it made keep their log."""
    actor.authorize(project_id, Role.OPS)
    with db.session() as session:
        hook = _load(session, actor, project_id, hook_id)
        now = utcnow()
        hook.deleted_at = now
        hook.active = False
        hook.updated_at = now
        session.add(hook)
        cancelled = (
            session.connection()
            .execute(
                update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.webhook_id) == hook.id,
                    col(WebhookDelivery.status) == "pending",
                )
                .values(
                    status="failed",
                    next_attempt_at=None,
                    lease_token=None,
                    last_error="the webhook was removed before this was delivered",
                )
            )
            .rowcount
        )
        audit.record(
            session,
            actor,
            "webhook.deleted",
            object_type="webhook",
            object_id=hook.id,
            project_id=project_id,
            detail={"url": hook.url, "pending_cancelled": int(cancelled or 0)},
        )
    forget_subscriptions(project_id)


def rotate_secret(db: Database, actor: Principal, project_id: str, hook_id: str) -> dict[str, Any]:
    """A new signing secret, shown once; every attempt from now on is signed with it."""
    actor.authorize(project_id, Role.OPS)
    with db.session() as session:
        hook = _load(session, actor, project_id, hook_id)
        hook.secret = _new_secret()
        hook.updated_at = utcnow()
        session.add(hook)
        audit.record(
            session,
            actor,
            "webhook.secret_rotated",
            object_type="webhook",
            object_id=hook.id,
            project_id=project_id,
        )
        return {"id": hook.id, "secret": hook.secret}


def list_deliveries(
    db: Database,
    actor: Principal,
    project_id: str,
    hook_id: str,
    *,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """The hook's delivery log, newest first, keyset-paginated on (created_at, id)."""
    actor.authorize(project_id, Role.OPS)
    problems: list[dict[str, str]] = []
    if status is not None and status not in _STATUSES:
        problems.append({"field": "status", "message": f"one of {', '.join(_STATUSES)}"})
    if not 1 <= limit <= MAX_LIMIT:
        problems.append({"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"})
    after = decode_cursor(cursor, problems) if cursor else None
    if problems:
        raise InvalidInput("invalid delivery log parameters", extra=problems)
    created, delivery_id = col(WebhookDelivery.created_at), col(WebhookDelivery.id)
    with db.read() as session:
        get_project(session, actor, project_id)
        hook = session.get(Webhook, hook_id)
        # A removed hook's log stays readable: it is what ops look at after removing it.
        if hook is None or hook.project_id != project_id:
            raise NotFound(f"webhook {hook_id!r} not found in project {project_id!r}")
        query = select(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == hook_id)
        if status is not None:
            query = query.where(col(WebhookDelivery.status) == status)
        if after is not None:
            ts, last_id = after
            query = query.where(
                created <= ts, or_(created < ts, and_(created == ts, delivery_id < last_id))
            )
        rows = list(
            session.execute(
                query.order_by(created.desc(), delivery_id.desc()).limit(limit + 1)
            ).scalars()
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [_delivery_view(d) for d in rows], next_cursor


def _delivery_view(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
        "last_attempt_at": iso(d.last_attempt_at),
        "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at),
    }
